// atman-cuda-attention: throughput of the fused manipulated attention
// (cuda::attend) with and without manipulation, against a naive materialised
// attention (cuBLAS GEMM, manipulate_scores, softmax, cuBLAS GEMM), for T = 512
// .. max_t and each element type. Prints one JSON document on stdout.
//
//   atman-cuda-attention [--max-t 8192] [--rows 2] [--heads 9] [--kv-heads 3]
//                        [--head-dim 64] [--repeats 5]
//
// TFLOP/s count the causal attention's useful work, 4 * rows * heads * head_dim
// * T (T + 1) / 2, for every variant (the naive one computes the full T x T);
// the peak is the device's float32 CUDA-core peak, which the fused kernel
// (no tensor cores) is bounded by.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atman/cuda/attention.cuh>
#include <atman/cuda/manipulation.cuh>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

using atman::index_t;
using atman::manipulation_mode;
namespace cuda = atman::cuda;

struct settings {
    index_t max_t = 8192, rows = 2, heads = 9, kv_heads = 3, head_dim = 64;
    int repeats = 5;
};

settings parse(int argc, char** argv) {
    settings s;
    for (int a = 1; a + 1 < argc; a += 2) {
        const long value = std::atol(argv[a + 1]);
        if (!std::strcmp(argv[a], "--max-t")) s.max_t = value;
        else if (!std::strcmp(argv[a], "--rows")) s.rows = value;
        else if (!std::strcmp(argv[a], "--heads")) s.heads = value;
        else if (!std::strcmp(argv[a], "--kv-heads")) s.kv_heads = value;
        else if (!std::strcmp(argv[a], "--head-dim")) s.head_dim = value;
        else if (!std::strcmp(argv[a], "--repeats")) s.repeats = int(value);
        else throw atman::invalid_argument(std::string("unknown option ") + argv[a]);
    }
    atman::detail::require(s.max_t >= 512 && s.rows >= 1 && s.repeats >= 1, "bad settings");
    return s;
}

template <class T>
struct buffer {
    T* data = nullptr;
    explicit buffer(std::size_t n) { cuda::check(cudaMalloc(&data, std::max<std::size_t>(n, 1) * sizeof(T)), "cudaMalloc"); }
    ~buffer() { cudaFree(data); }
    buffer(const buffer&) = delete;
    buffer& operator=(const buffer&) = delete;
};

template <class Scalar>
__global__ void fill_kernel(Scalar* data, std::size_t n, unsigned seed) {
    for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
        const unsigned h = (unsigned(i) * 2654435761u) ^ seed;
        data[i] = cuda::from_float<Scalar>(float(h % 2001u) / 1000.0f - 1.0f);
    }
}

// Causal softmax of the materialised scores, one warp per query row; masked keys get 0.
template <class Scalar>
__global__ void causal_softmax_kernel(const float* scores, Scalar* weights, index_t n_query_rows, index_t t) {
    const int lane = int(threadIdx.x) % 32;
    const index_t r = (index_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    if (r >= n_query_rows) return;
    const index_t n_visible = r % t + 1;
    const float* row = scores + r * t;
    float max = -INFINITY, sum = 0;
    for (index_t j = lane; j < n_visible; j += 32) max = fmaxf(max, row[j]);
    max = cuda::detail::warp_max(max);
    for (index_t j = lane; j < n_visible; j += 32) sum += expf(row[j] - max);
    sum = cuda::detail::warp_sum(sum);
    for (index_t j = lane; j < t; j += 32)
        weights[r * t + j] = cuda::from_float<Scalar>(j < n_visible ? expf(row[j] - max) / sum : 0.0f);
}

template <class Scalar>
cudaDataType_t data_type() {
    if constexpr (std::is_same_v<Scalar, float>) return CUDA_R_32F;
    else if constexpr (std::is_same_v<Scalar, __half>) return CUDA_R_16F;
    else return CUDA_R_16BF;
}

float time_ms(const std::function<void()>& run, int repeats) {
    run();  // warm-up
    cudaEvent_t start, stop;
    cuda::check(cudaEventCreate(&start), "cudaEventCreate");
    cuda::check(cudaEventCreate(&stop), "cudaEventCreate");
    cuda::check(cudaEventRecord(start), "cudaEventRecord");
    for (int i = 0; i < repeats; ++i) run();
    cuda::check(cudaEventRecord(stop), "cudaEventRecord");
    cuda::check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    cuda::check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    return ms / float(repeats);
}

struct device_info {
    std::string name;
    int sms = 0, clock_khz = 0, cores_per_sm = 0;
    double fp32_peak_tflops() const { return 2.0 * sms * cores_per_sm * clock_khz * 1e3 / 1e12; }
};

device_info query_device() {
    device_info info;
    cudaDeviceProp properties{};
    cuda::check(cudaGetDeviceProperties(&properties, 0), "cudaGetDeviceProperties");
    info.name = properties.name;
    info.sms = properties.multiProcessorCount;
    cuda::check(cudaDeviceGetAttribute(&info.clock_khz, cudaDevAttrClockRate, 0), "cudaDeviceGetAttribute");
    info.cores_per_sm = properties.major == 8 && properties.minor == 0 ? 64 : 128;  // FP32 lanes per SM
    return info;
}

bool first_result = true;
void print_result(const char* dtype, index_t t, const char* variant, float ms, double flops,
                  const device_info& device, const std::string& error) {
    std::printf("%s\n    {\"dtype\": \"%s\", \"t\": %ld, \"variant\": \"%s\"", first_result ? "" : ",", dtype, long(t), variant);
    first_result = false;
    if (!error.empty()) {
        std::printf(", \"error\": \"%s\"}", error.c_str());
        return;
    }
    const double tflops = flops / (double(ms) * 1e-3) / 1e12;
    std::printf(", \"ms\": %.4f, \"tflops\": %.3f, \"fraction_of_fp32_peak\": %.4f}", ms, tflops,
                tflops / device.fp32_peak_tflops());
}

template <class Scalar>
void run_dtype(const settings& s, const device_info& device, cublasHandle_t cublas) {
    const char* dtype = cuda::scalar_name<Scalar>();
    const index_t d = s.head_dim, group = s.heads / s.kv_heads;
    for (index_t t = 512; t <= s.max_t; t *= 2) {
        const std::size_t q_size = std::size_t(s.rows * s.heads * t * d), kv_size = std::size_t(s.rows * s.kv_heads * t * d);
        buffer<Scalar> q(q_size), k(kv_size), v(kv_size), out(q_size);
        buffer<float> factors(std::size_t(s.rows * t));
        fill_kernel<<<1024, 256>>>(q.data, q_size, 1u);
        fill_kernel<<<1024, 256>>>(k.data, kv_size, 2u);
        fill_kernel<<<1024, 256>>>(v.data, kv_size, 3u);
        std::vector<float> phi(std::size_t(s.rows * t), 1.0f);  // one suppressed unit of 8 keys per row
        for (index_t r = 0; r < s.rows; ++r)
            for (index_t j = t / 3; j < t / 3 + 8; ++j) phi[std::size_t(r * t + j)] = 0.1f;
        cuda::check(cudaMemcpy(factors.data, phi.data(), phi.size() * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
        const double flops = 4.0 * double(s.rows * s.heads * d) * double(t) * double(t + 1) / 2;

        // Layout (row, head, position, d): one row's heads are t * d apart.
        std::vector<cuda::attention_row<Scalar>> rows(std::size_t(s.rows));
        for (index_t r = 0; r < s.rows; ++r) {
            auto& row = rows[std::size_t(r)];
            row.q = q.data + r * s.heads * t * d;
            row.out = out.data + r * s.heads * t * d;
            row.q_pos_stride = row.out_pos_stride = d;
            row.q_head_stride = row.out_head_stride = t * d;
            row.q_begin = 0;
            row.n_queries = t;
            row.own = {k.data + r * s.kv_heads * t * d, v.data + r * s.kv_heads * t * d, t, d, t * d};
        }
        const cuda::attention_shape shape{s.heads, s.kv_heads, d, 0};
        const auto fused = [&](const float* key_factors, manipulation_mode mode) {
            for (index_t r = 0; r < s.rows; ++r) {
                rows[std::size_t(r)].key_factors = key_factors ? key_factors + r * t : nullptr;
                rows[std::size_t(r)].mode = mode;
            }
            return time_ms([&] { cuda::attend(shape, rows.data(), s.rows); }, s.repeats);
        };
        print_result(dtype, t, "fused_plain", fused(nullptr, manipulation_mode::multiplicative), flops, device, {});
        print_result(dtype, t, "fused_multiplicative", fused(factors.data, manipulation_mode::multiplicative), flops, device, {});
        print_result(dtype, t, "fused_log_additive", fused(factors.data, manipulation_mode::log_additive), flops, device, {});

        try {
            const std::size_t score_size = std::size_t(s.rows * s.heads) * std::size_t(t * t);
            buffer<float> scores(score_size);
            buffer<Scalar> weights(score_size);
            const float scale = 1.0f / std::sqrt(float(d)), one = 1, zero = 0;
            const int batches = int(s.rows * s.kv_heads);
            const cuda::score_tensor_shape score_shape{s.rows, s.heads, t, t, 0};
            const auto naive = [&] {
                // scores (group * t x t per KV head, row-major) = Q K^T * scale
                cuda::check(cublasGemmStridedBatchedEx(
                                cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(t), int(group * t), int(d), &scale, k.data,
                                data_type<Scalar>(), int(d), t * d, q.data, data_type<Scalar>(), int(d),
                                group * t * d, &zero, scores.data, CUDA_R_32F, int(t), group * t * t, batches,
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                            "cublasGemmStridedBatchedEx (scores)");
                cuda::manipulate_scores(manipulation_mode::multiplicative, scores.data, score_shape, factors.data);
                const index_t query_rows = s.rows * s.heads * t;
                causal_softmax_kernel<<<unsigned((query_rows + 7) / 8), 256>>>(scores.data, weights.data, query_rows, t);
                // out (group * t x d per KV head) = P V
                cuda::check(cublasGemmStridedBatchedEx(
                                cublas, CUBLAS_OP_N, CUBLAS_OP_N, int(d), int(group * t), int(t), &one, v.data,
                                data_type<Scalar>(), int(d), t * d, weights.data, data_type<Scalar>(), int(t),
                                group * t * t, &zero, out.data, data_type<Scalar>(), int(d), group * t * d,
                                batches, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                            "cublasGemmStridedBatchedEx (output)");
            };
            print_result(dtype, t, "naive_materialised_multiplicative", time_ms(naive, s.repeats), flops, device, {});
        } catch (const atman::error& e) {
            print_result(dtype, t, "naive_materialised_multiplicative", 0, flops, device, e.what());
            cudaGetLastError();  // clear a sticky allocation error
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const settings s = parse(argc, argv);
        const device_info device = query_device();
        cublasHandle_t cublas;
        cuda::check(cublasCreate(&cublas), "cublasCreate");
        std::printf("{\n  \"device\": {\"name\": \"%s\", \"sms\": %d, \"clock_mhz\": %d, \"fp32_peak_tflops\": %.2f},\n",
                    device.name.c_str(), device.sms, device.clock_khz / 1000, device.fp32_peak_tflops());
        std::printf("  \"shape\": {\"rows\": %ld, \"heads\": %ld, \"kv_heads\": %ld, \"head_dim\": %ld},\n",
                    long(s.rows), long(s.heads), long(s.kv_heads), long(s.head_dim));
        std::printf("  \"results\": [");
        run_dtype<float>(s, device, cublas);
        run_dtype<__half>(s, device, cublas);
        run_dtype<__nv_bfloat16>(s, device, cublas);
        std::printf("\n  ]\n}\n");
        cublasDestroy(cublas);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "atman-cuda-attention: %s\n", e.what());
        return 1;
    }
    return 0;
}
