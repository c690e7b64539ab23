#pragma once
// Host-side helpers of the CUDA tests: deterministic inputs in each element type,
// device buffers, and the tolerant comparison against the float32 CPU result.

#include <cuda_runtime.h>

#include <atman/cuda/check.cuh>
#include <atman/cuda/scalar.cuh>
#include <cmath>
#include <cstddef>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace atman::cuda_test {

// Owns n elements of device memory.
template <class T>
class device_array {
public:
    explicit device_array(std::size_t n = 0) : size_(n) {
        if (n > 0) cuda::check(cudaMalloc(&data_, n * sizeof(T)), "cudaMalloc (test buffer)");
    }
    explicit device_array(const std::vector<T>& host) : device_array(host.size()) {
        if (size_ > 0)
            cuda::check(cudaMemcpy(data_, host.data(), size_ * sizeof(T), cudaMemcpyHostToDevice),
                        "cudaMemcpy (upload)");
    }
    device_array(device_array&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
    device_array& operator=(device_array&& other) noexcept {
        std::swap(data_, other.data_);
        std::swap(size_, other.size_);
        return *this;
    }
    device_array(const device_array&) = delete;
    device_array& operator=(const device_array&) = delete;
    ~device_array() { cudaFree(data_); }

    T* data() const { return data_; }
    std::size_t size() const { return size_; }
    std::vector<T> download() const {
        std::vector<T> host(size_);
        if (size_ > 0)
            cuda::check(cudaMemcpy(host.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost),
                        "cudaMemcpy (download)");
        return host;
    }

private:
    T* data_ = nullptr;
    std::size_t size_ = 0;
};

// Uniform in [-magnitude, magnitude].
inline std::vector<float> random_values(std::size_t n, float magnitude, std::mt19937& rng) {
    std::uniform_real_distribution<float> uniform(-magnitude, magnitude);
    std::vector<float> values(n);
    for (float& v : values) v = uniform(rng);
    return values;
}

// Values in the kernel's element type, and the same values (after rounding) as
// float32 for the CPU reference, so both sides see identical inputs.
template <class Scalar>
struct typed_values {
    std::vector<Scalar> typed;
    std::vector<float> exact;
};

template <class Scalar>
typed_values<Scalar> round_to(const std::vector<float>& values) {
    typed_values<Scalar> result;
    result.typed.reserve(values.size());
    result.exact.reserve(values.size());
    for (float v : values) {
        result.typed.push_back(cuda::from_float<Scalar>(v));
        result.exact.push_back(cuda::to_float(result.typed.back()));
    }
    return result;
}

template <class Scalar>
std::vector<float> to_floats(const std::vector<Scalar>& values) {
    std::vector<float> result;
    result.reserve(values.size());
    for (const Scalar& v : values) result.push_back(cuda::to_float(v));
    return result;
}

// float32 within 1e-4, the 16-bit types within 2e-2, relative to max(1, |expected|).
template <class Scalar>
double tolerance() {
    return std::is_same_v<Scalar, float> ? 1e-4 : 2e-2;
}

// Empty when every |actual - expected| <= tol * max(1, |expected|) (NaN never passes);
// otherwise names the first offending element and the largest error.
inline std::string mismatch(const std::vector<float>& actual, const std::vector<float>& expected,
                            double tol) {
    if (actual.size() != expected.size())
        return "size " + std::to_string(actual.size()) + " != expected " + std::to_string(expected.size());
    std::ostringstream first;
    double worst = 0;
    std::size_t bad = 0;
    for (std::size_t i = 0; i < actual.size(); ++i) {
        const double error = std::fabs(double(actual[i]) - double(expected[i]));
        const double allowed = tol * std::fmax(1.0, std::fabs(double(expected[i])));
        if (!(error <= allowed)) {
            if (bad++ == 0)
                first << "element " << i << ": got " << actual[i] << ", expected " << expected[i]
                      << " (tolerance " << allowed << ")";
            if (!(error <= worst)) worst = error;
        }
    }
    if (bad == 0) return {};
    first << "; " << bad << " of " << actual.size() << " elements off, largest error " << worst;
    return first.str();
}

}  // namespace atman::cuda_test
