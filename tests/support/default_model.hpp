#pragma once
// The default model for the tests that need it: $ATMAN_MODEL, the path
// scripts/fetch-model prints. Without it such a test fails rather than skips,
// so a run that forgot the model cannot pass.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

namespace atman_test {

inline std::string model_path() {
    const char* path = std::getenv("ATMAN_MODEL");
    if (path == nullptr || *path == '\0')
        FAIL("ATMAN_MODEL is not set: run `export ATMAN_MODEL=$(scripts/fetch-model)` first");
    return path;
}

}  // namespace atman_test
