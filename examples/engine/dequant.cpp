#include "dequant.hpp"

#include <cstring>
#include <string>

// Bit-exactness with the reference needs every product rounded on its own:
// never fuse `d * q + m` into one FMA, whatever -march the build uses.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace atman::engine {
namespace {

using byte = std::uint8_t;

std::uint16_t load_u16(const byte* p) {
    std::uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

std::uint32_t load_u32(const byte* p) {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

float from_bits(std::uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// IEEE binary16 -> binary32, exact for every input (subnormals, inf, NaN).
float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1fu;
    const std::uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1f) return from_bits(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        // zero or subnormal: mantissa * 2^-24, exact in float
        const float magnitude = float(mantissa) * 0x1p-24f;
        return sign ? -magnitude : magnitude;
    }
    return from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

float load_half(const byte* p) { return half_to_float(load_u16(p)); }

// ---- one decoder per block layout: block bytes -> block_elements floats ----

void decode_f16(const byte* b, float* out) { out[0] = load_half(b); }

void decode_bf16(const byte* b, float* out) { out[0] = from_bits(std::uint32_t(load_u16(b)) << 16); }

// Q4_0: f16 d, 16 bytes of nibbles; low nibbles are elements 0..15, high 16..31.
void decode_q4_0(const byte* b, float* out) {
    const float d = load_half(b);
    const byte* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        out[j] = d * float(int(qs[j] & 0x0f) - 8);
        out[j + 16] = d * float(int(qs[j] >> 4) - 8);
    }
}

// Q4_1: f16 d, f16 m, nibbles as Q4_0; x = d q + m.
void decode_q4_1(const byte* b, float* out) {
    const float d = load_half(b);
    const float m = load_half(b + 2);
    const byte* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        out[j] = d * float(qs[j] & 0x0f) + m;
        out[j + 16] = d * float(qs[j] >> 4) + m;
    }
}

// The 5-bit quant of element j of a Q5 block: nibble as Q4_0, bit j of qh on top.
int q5_value(const byte* qs, std::uint32_t qh, int j) {
    const int nibble = j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
    return nibble | int((qh >> j) & 1u) << 4;
}

// Q5_0: f16 d, u32 high bits, 16 bytes of nibbles; x = d (q - 16).
void decode_q5_0(const byte* b, float* out) {
    const float d = load_half(b);
    const std::uint32_t qh = load_u32(b + 2);
    for (int j = 0; j < 32; ++j) out[j] = d * float(q5_value(b + 6, qh, j) - 16);
}

// Q5_1: f16 d, f16 m, u32 high bits, nibbles; x = d q + m.
void decode_q5_1(const byte* b, float* out) {
    const float d = load_half(b);
    const float m = load_half(b + 2);
    const std::uint32_t qh = load_u32(b + 4);
    for (int j = 0; j < 32; ++j) out[j] = d * float(q5_value(b + 8, qh, j)) + m;
}

// Q8_0: f16 d, 32 int8; x = d q.
void decode_q8_0(const byte* b, float* out) {
    const float d = load_half(b);
    for (int j = 0; j < 32; ++j) out[j] = d * float(std::int8_t(b[2 + j]));
}

// Q2_K: 16 bytes (scale | min << 4) per 16 elements, 64 bytes of 2-bit quants,
// f16 d, f16 dmin. Element h*128 + k*32 + l is bits 2k of qs[h*32 + l].
void decode_q2_k(const byte* b, float* out) {
    const byte* scales = b;
    const byte* qs = b + 16;
    const float d = load_half(b + 80);
    const float dmin = load_half(b + 82);
    for (int e = 0; e < 256; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const int q = (qs[h * 32 + l] >> (2 * k)) & 3;
        const float scale = d * float(scales[e / 16] & 0x0f);
        const float offset = dmin * float(scales[e / 16] >> 4);
        out[e] = scale * float(q) - offset;
    }
}

// Q3_K: 32 bytes of high bits, 64 bytes of 2-bit quants, 12 bytes of sixteen
// 6-bit signed scales (biased by 32), f16 d. A clear high bit subtracts 4.
void decode_q3_k(const byte* b, float* out) {
    const byte* hmask = b;
    const byte* qs = b + 32;
    const byte* packed = b + 96;
    const float d = load_half(b + 108);
    float scale[16];
    for (int i = 0; i < 16; ++i) {
        const int low = i < 8 ? (packed[i] & 0x0f) : (packed[i - 8] >> 4);
        const int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        scale[i] = d * float((low | high << 4) - 32);
    }
    for (int e = 0; e < 256; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const int low_bits = (qs[h * 32 + l] >> (2 * k)) & 3;
        const bool high_bit = (hmask[l] >> (e / 32)) & 1;
        out[e] = scale[e / 16] * float(low_bits - (high_bit ? 0 : 4));
    }
}

// The 6-bit scale and min of sub-block j (of 8) in the 12-byte Q4_K/Q5_K packing:
// bytes 0..3 scales 0..3, bytes 4..7 mins 0..3, the low 6 bits each; scales and
// mins 4..7 take a nibble of bytes 8..11 plus the top 2 bits of bytes 0..7.
void k_scale_min(const byte* s, int j, int& scale, int& min) {
    if (j < 4) {
        scale = s[j] & 63;
        min = s[j + 4] & 63;
    } else {
        scale = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// Q4_K / Q5_K share: f16 d, f16 dmin, 12 scale bytes, [32 bytes of fifth bits],
// 128 bytes of nibbles; sub-block j takes the low (j even) or high nibbles of
// bytes (j/2)*32 ..+32, and bit j of qh[l] in Q5_K. x = (d sc) q - (dmin m).
template <bool fifth_bit>
void decode_q45_k(const byte* b, float* out) {
    const float d = load_half(b);
    const float dmin = load_half(b + 2);
    const byte* packed = b + 4;
    const byte* qh = b + 16;
    const byte* qs = fifth_bit ? b + 48 : b + 16;
    for (int j = 0; j < 8; ++j) {
        int sc = 0, m = 0;
        k_scale_min(packed, j, sc, m);
        const float scale = d * float(sc);
        const float offset = dmin * float(m);
        const byte* chunk = qs + (j / 2) * 32;
        for (int l = 0; l < 32; ++l) {
            int q = (chunk[l] >> (4 * (j % 2))) & 0x0f;
            if (fifth_bit) q |= ((qh[l] >> j) & 1) << 4;
            out[j * 32 + l] = scale * float(q) - offset;
        }
    }
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 int8 scales, f16 d.
// In half h (128 elements), element r takes nibble r/64 of ql[h*64 + r%64]
// and bits 2(r/32) of qh[h*32 + r%32]; x = (d scale) (q - 32).
void decode_q6_k(const byte* b, float* out) {
    const byte* ql = b;
    const byte* qh = b + 128;
    const byte* scales = b + 192;
    const float d = load_half(b + 208);
    for (int e = 0; e < 256; ++e) {
        const int h = e / 128, r = e % 128;
        const int low = (ql[h * 64 + r % 64] >> (4 * (r / 64))) & 0x0f;
        const int high = (qh[h * 32 + r % 32] >> (2 * (r / 32))) & 3;
        const float scale = d * float(std::int8_t(scales[e / 16]));
        out[e] = scale * float((low | high << 4) - 32);
    }
}

using block_decoder = void (*)(const byte*, float*);

// Decodes n_blocks consecutive blocks; the decoder is a template argument so
// that it inlines into the loop.
template <block_decoder decode_block>
void decode_blocks(const byte* src, std::int64_t n_blocks, std::size_t block_bytes, std::int64_t block_elements,
                   float* dst) {
    for (std::int64_t i = 0; i < n_blocks; ++i) decode_block(src + std::size_t(i) * block_bytes, dst + i * block_elements);
}

using range_decoder = void (*)(const byte*, std::int64_t, std::size_t, std::int64_t, float*);

// The decoder of each type dequantize() handles besides F32 (copied); nullptr for the others.
range_decoder decoder_of(ggml_type type) {
    switch (type) {
        case ggml_type::f16: return decode_blocks<decode_f16>;
        case ggml_type::bf16: return decode_blocks<decode_bf16>;
        case ggml_type::q4_0: return decode_blocks<decode_q4_0>;
        case ggml_type::q4_1: return decode_blocks<decode_q4_1>;
        case ggml_type::q5_0: return decode_blocks<decode_q5_0>;
        case ggml_type::q5_1: return decode_blocks<decode_q5_1>;
        case ggml_type::q8_0: return decode_blocks<decode_q8_0>;
        case ggml_type::q2_k: return decode_blocks<decode_q2_k>;
        case ggml_type::q3_k: return decode_blocks<decode_q3_k>;
        case ggml_type::q4_k: return decode_blocks<decode_q45_k<false>>;
        case ggml_type::q5_k: return decode_blocks<decode_q45_k<true>>;
        case ggml_type::q6_k: return decode_blocks<decode_q6_k>;
        default: return nullptr;
    }
}

}  // namespace

bool is_supported(ggml_type type) { return is_known_type(type) && (type == ggml_type::f32 || decoder_of(type)); }

void dequantize(ggml_type type, const void* src, std::int64_t n, float* dst) {
    const std::int64_t elements = block_elements(type);  // throws for an unknown type
    const range_decoder decode = decoder_of(type);
    if (type != ggml_type::f32 && !decode)
        throw gguf_error(std::string("dequantisation of type ") + to_string(type) + " is not supported");
    if (n < 0 || n % elements != 0)
        throw invalid_argument("dequantize: n = " + std::to_string(n) + " is not a non-negative multiple of the " +
                               to_string(type) + " block size " + std::to_string(elements));
    if (n > 0 && (!src || !dst)) throw invalid_argument("dequantize: null source or destination");
    if (n == 0) return;
    const auto* bytes = static_cast<const byte*>(src);
    if (type == ggml_type::f32) {
        std::memcpy(dst, bytes, std::size_t(n) * sizeof(float));
        return;
    }
    decode(bytes, n / elements, block_bytes(type), elements, dst);
}

}  // namespace atman::engine
