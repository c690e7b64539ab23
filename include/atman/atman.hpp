#pragma once
// Umbrella header: everything a user of atman needs.

#include "adapter.hpp"
#include "config.hpp"
#include "error.hpp"
