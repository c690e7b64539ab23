#pragma once
// ATMAN_HOST_DEVICE marks a function that both the CPU and the GPU may call.
// It expands to __host__ __device__ only under a CUDA compiler, so headers that
// use it stay plain C++17 for every other compiler (compare EIGEN_DEVICE_FUNC).

#if defined(__CUDACC__)
#define ATMAN_HOST_DEVICE __host__ __device__
#else
#define ATMAN_HOST_DEVICE
#endif
