// libFuzzer target: the command-line parser of atman-explain and
// atman-explain-mpi (engine/cli.hpp) on arbitrary arguments. The input is
// split at NUL bytes into argv strings. A usage_error is the expected answer
// to bad arguments; anything else escaping, or a crash, is a bug.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/cli.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::string> args(1);
    for (std::size_t i = 0; i < size; ++i) {
        if (data[i] == 0) {
            args.emplace_back();
        } else {
            args.back() += char(data[i]);
        }
    }
    try {
        atman::engine::parse_command_line({"atman-explain", "fuzzing"}, args);
    } catch (const atman::engine::usage_error&) {
    }
    return 0;
}
