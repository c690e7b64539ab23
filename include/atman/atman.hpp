#pragma once
// Umbrella header: everything a user of atman needs.

#include "adapter.hpp"
#include "config.hpp"
#include "error.hpp"
#include "report/html.hpp"
#include "report/json.hpp"
#include "report/terminal.hpp"
#include "attention.hpp"
#include "manipulation.hpp"
#include "neighborhood.hpp"
#include "units.hpp"
#include "sequence.hpp"
#include "request.hpp"
#include "scheduler.hpp"
#include "batch_rows.hpp"
#include "scoring.hpp"
#include "explainer.hpp"
