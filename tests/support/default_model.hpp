#pragma once
// The models for the tests that need them: $ATMAN_MODEL, the path
// scripts/fetch-model prints, and $ATMAN_GEMMA_MODEL, the path of
// scripts/fetch-model gemma3 (the llama.cpp adapter's second architecture).
// Without one such a test fails rather than skips, so a run that forgot the
// model cannot pass.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

namespace atman_test {

inline std::string model_path_from(const char* variable, const char* fetch) {
    const char* path = std::getenv(variable);
    if (path == nullptr || *path == '\0')
        FAIL(variable << " is not set: run `export " << variable << "=$(" << fetch << ")` first");
    return path;
}

inline std::string model_path() { return model_path_from("ATMAN_MODEL", "scripts/fetch-model"); }
inline std::string gemma_model_path() { return model_path_from("ATMAN_GEMMA_MODEL", "scripts/fetch-model gemma3"); }

}  // namespace atman_test
