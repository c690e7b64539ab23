// main() of every CUDA test binary: finds out whether a device is present and
// runs (or skips, naming each) the registered tests.
#include <cuda_runtime.h>

#include <chrono>
#include <cstring>
#include <exception>
#include <iostream>

#include "harness.hpp"

namespace atman::cuda_test {

int run_tests(int argc, char** argv, const std::string& skip_reason) {
    std::vector<const test_case*> selected;
    for (const test_case& test : registry()) {
        bool named = argc <= 1;
        for (int a = 1; a < argc; ++a) named = named || std::strcmp(argv[a], test.name) == 0;
        if (argc > 1 && std::strcmp(argv[1], "--list") == 0) {
            std::cout << test.name << '\n';
        } else if (named) {
            selected.push_back(&test);
        }
    }
    if (argc > 1 && std::strcmp(argv[1], "--list") == 0) return 0;
    if (selected.empty()) {
        std::cerr << "no test matches the names given\n";
        return 2;
    }
    int failed = 0, skipped = 0;
    for (const test_case* test : selected) {
        if (test->needs_device && !skip_reason.empty()) {
            std::cout << "SKIPPED " << test->name << ": " << skip_reason << std::endl;
            ++skipped;
            continue;
        }
        const auto start = std::chrono::steady_clock::now();
        try {
            test->run();
            const std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
            std::cout << "PASSED " << test->name << " (" << took.count() << " ms)" << std::endl;
        } catch (const std::exception& e) {
            std::cout << "FAILED " << test->name << ": " << e.what() << std::endl;
            ++failed;
        }
    }
    std::cout << selected.size() - failed - skipped << " passed, " << failed << " failed, " << skipped
              << " skipped" << std::endl;
    if (failed > 0) return 1;
    return skipped > 0 ? 77 : 0;
}

namespace {

// Empty when a device can run the kernels (built for compute capability 8.0 and 9.0).
std::string why_no_device() {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess)
        return std::string("no CUDA device (cudaGetDeviceCount: ") + cudaGetErrorName(status) + ", " +
               cudaGetErrorString(status) + ")";
    if (count == 0) return "no CUDA device (cudaGetDeviceCount: 0 devices)";
    cudaDeviceProp properties{};
    if (cudaGetDeviceProperties(&properties, 0) == cudaSuccess && properties.major < 8)
        return std::string("CUDA device ") + properties.name + " has compute capability " +
               std::to_string(properties.major) + "." + std::to_string(properties.minor) +
               "; the kernels are built for 8.0 and later";
    return {};
}

}  // namespace
}  // namespace atman::cuda_test

int main(int argc, char** argv) {
    return atman::cuda_test::run_tests(argc, argv, atman::cuda_test::why_no_device());
}
