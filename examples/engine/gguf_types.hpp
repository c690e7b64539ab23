#pragma once
// The tensor element types a GGUF file may name: their ids, names and block
// layouts (ggml's type traits), in one table (gguf_types.cpp) that the file
// reader (sizes) and the dequantiser (decoding) both use.

#include <atman/error.hpp>

#include <cstddef>
#include <cstdint>

namespace atman::engine {

// Anything wrong with a GGUF file: the message names the problem and, where
// useful, the key or tensor and the byte offset.
class gguf_error : public atman::error {
public:
    using atman::error::error;
};

// Tensor element types, with the ids GGUF files store.
enum class ggml_type : std::uint32_t {
    f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
    q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15,
    iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21,
    iq2_s = 22, iq4_xs = 23, i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28,
    iq1_m = 29, bf16 = 30, tq1_0 = 34, tq2_0 = 35, mxfp4 = 39
};

// "Q4_1", "F32", ...; "unknown" for an id outside the enum.
const char* to_string(ggml_type type);

// Whether the type's block layout (and so its size in bytes) is known.
bool is_known_type(ggml_type type);

// Elements per block (1 for f32/f16/bf16) and bytes per block; both throw
// gguf_error for a type that is not known.
std::int64_t block_elements(ggml_type type);
std::size_t block_bytes(ggml_type type);

}  // namespace atman::engine
