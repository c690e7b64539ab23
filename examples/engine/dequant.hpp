#pragma once
// Conversion of GGUF tensor data to float32 (block layouts: gguf_types.hpp).
// Results are bit-identical to the PyPI `gguf` package (gguf.quants.dequantize).

#include <cstddef>
#include <cstdint>

#include "gguf_types.hpp"

namespace atman::engine {

// Whether dequantize() handles the type: F32, F16, BF16, Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
bool is_supported(ggml_type type);

// Converts n elements (a multiple of block_elements(type)) stored at src to
// float32 at dst. Throws gguf_error for an unsupported type and
// atman::invalid_argument for a bad n.
void dequantize(ggml_type type, const void* src, std::int64_t n, float* dst);

}  // namespace atman::engine
