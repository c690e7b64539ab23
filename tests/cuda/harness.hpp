#pragma once
// A minimal test harness for the CUDA tests (nvcc-friendly, no dependencies).
// ATMAN_GPU_TEST(name) needs a CUDA device: without one, the test binary prints
// "SKIPPED <name>: <why>" for it and exits with 77, which ctest reports as skipped.
// ATMAN_HOST_TEST(name) runs on the CPU everywhere.
// Each test is also its own ctest entry: CMakeLists.txt finds the macros in the source.

#include <stdexcept>
#include <string>
#include <vector>

namespace atman::cuda_test {

struct test_failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct test_case {
    const char* name;
    bool needs_device;
    void (*run)();
};

inline std::vector<test_case>& registry() {
    static std::vector<test_case> tests;
    return tests;
}

struct registrar {
    registrar(const char* name, bool needs_device, void (*run)()) {
        registry().push_back({name, needs_device, run});
    }
};

inline void require(bool condition, const std::string& message, const char* file, int line) {
    if (!condition) throw test_failure(std::string(file) + ":" + std::to_string(line) + ": " + message);
}

// Runs the tests named on the command line (all when none is named); `--list`
// prints the names. skip_reason: why device tests cannot run here, empty if they can.
int run_tests(int argc, char** argv, const std::string& skip_reason);

}  // namespace atman::cuda_test

#define ATMAN_TEST_DEFINE(name, needs_device)                                            \
    static void name();                                                                  \
    static const ::atman::cuda_test::registrar name##_registrar(#name, needs_device, name); \
    static void name()
#define ATMAN_GPU_TEST(name) ATMAN_TEST_DEFINE(name, true)
#define ATMAN_HOST_TEST(name) ATMAN_TEST_DEFINE(name, false)

#define ATMAN_REQUIRE(condition, message) \
    ::atman::cuda_test::require((condition), (message), __FILE__, __LINE__)

// Requires that `statement` throws an exception of type `exception`.
#define ATMAN_REQUIRE_THROWS_AS(statement, exception)                                       \
    do {                                                                                    \
        bool thrown_ = false;                                                               \
        try {                                                                               \
            statement;                                                                      \
        } catch (const exception&) {                                                        \
            thrown_ = true;                                                                 \
        }                                                                                   \
        ATMAN_REQUIRE(thrown_, "expected " #exception " from: " #statement);                \
    } while (false)
