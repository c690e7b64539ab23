#pragma once
// Device memory for the duration of enqueued work: allocated and freed in
// stream order (cudaMallocAsync / cudaFreeAsync), so no synchronisation is needed.

#include <cuda_runtime.h>

#include <cstddef>

#include "check.cuh"

namespace atman::cuda::detail {

template <class T>
class device_buffer {
public:
    device_buffer(std::size_t count, cudaStream_t stream) : stream_(stream), count_(count) {
        if (count > 0) check(cudaMallocAsync(&data_, count * sizeof(T), stream), "cudaMallocAsync");
    }
    ~device_buffer() {
        if (data_ != nullptr) cudaFreeAsync(data_, stream_);
    }
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;

    T* data() const { return data_; }
    std::size_t size() const { return count_; }

    void upload(const T* host) {
        if (count_ > 0)
            check(cudaMemcpyAsync(data_, host, count_ * sizeof(T), cudaMemcpyHostToDevice, stream_),
                  "cudaMemcpyAsync (upload)");
    }
    // Copies the first `count` elements to the host and waits for them.
    void download(T* host, std::size_t count) const {
        if (count == 0) return;
        check(cudaMemcpyAsync(host, data_, count * sizeof(T), cudaMemcpyDeviceToHost, stream_),
              "cudaMemcpyAsync (download)");
        check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    }

private:
    T* data_ = nullptr;
    cudaStream_t stream_;
    std::size_t count_;
};

}  // namespace atman::cuda::detail
