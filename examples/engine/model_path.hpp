#pragma once
// Where the programs find a model: --model, else $ATMAN_MODEL, else the cache
// that scripts/fetch-model fills.

#include <atman/error.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace atman::engine {

inline constexpr const char* default_model_file = "SmolLM2-135M-Instruct.Q4_1.gguf";

inline std::string default_model_path() {
    if (const char* env = std::getenv("ATMAN_MODEL"); env && *env) return env;
    std::filesystem::path cache;
    if (const char* c = std::getenv("ATMAN_CACHE"); c && *c) {
        cache = c;
    } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
        cache = std::filesystem::path(x) / "atman";
    } else if (const char* h = std::getenv("HOME"); h && *h) {
        cache = std::filesystem::path(h) / ".cache" / "atman";
    }
    return (cache / default_model_file).string();
}

// The model to load: `given` if non-empty, else the default; a missing file
// throws with the hint to fetch the default model.
inline std::string resolve_model_path(const std::string& given) {
    const std::string path = given.empty() ? default_model_path() : given;
    if (!std::filesystem::exists(path)) {
        throw atman::invalid_argument("model file not found: " + path +
                                      (given.empty() ? " (run scripts/fetch-model, or pass --model PATH)" : ""));
    }
    return path;
}

}  // namespace atman::engine
