#pragma once
// Turning CUDA runtime and cuBLAS status codes into atman exceptions.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "../error.hpp"

namespace atman::cuda {

// A CUDA runtime or cuBLAS call failed (no device, out of memory, launch failure).
class cuda_error : public error {
public:
    using error::error;
};

inline void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) {
        throw cuda_error(std::string(what) + ": " + cudaGetErrorName(status) + " (" +
                         cudaGetErrorString(status) + ")");
    }
}

inline void check(cublasStatus_t status, const char* what) {
    if (status != CUBLAS_STATUS_SUCCESS) {
        throw cuda_error(std::string(what) + ": " + cublasGetStatusName(status) + " (" +
                         cublasGetStatusString(status) + ")");
    }
}

// Checks the launch of the kernel just enqueued (bad configuration, no device).
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

}  // namespace atman::cuda
