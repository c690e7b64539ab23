#include "gguf_types.hpp"

#include <string>

namespace atman::engine {
namespace {

struct type_layout {
    ggml_type type;
    const char* name;
    std::int64_t block_elements;
    std::size_t block_bytes;
};

// Every type GGUF files may name, with its block size (ggml's type traits).
constexpr type_layout layouts[] = {
    {ggml_type::f32, "F32", 1, 4},
    {ggml_type::f16, "F16", 1, 2},
    {ggml_type::q4_0, "Q4_0", 32, 18},
    {ggml_type::q4_1, "Q4_1", 32, 20},
    {ggml_type::q5_0, "Q5_0", 32, 22},
    {ggml_type::q5_1, "Q5_1", 32, 24},
    {ggml_type::q8_0, "Q8_0", 32, 34},
    {ggml_type::q8_1, "Q8_1", 32, 36},  // f16 d, f16 sum, 32 int8 (ggml's layout)
    {ggml_type::q2_k, "Q2_K", 256, 84},
    {ggml_type::q3_k, "Q3_K", 256, 110},
    {ggml_type::q4_k, "Q4_K", 256, 144},
    {ggml_type::q5_k, "Q5_K", 256, 176},
    {ggml_type::q6_k, "Q6_K", 256, 210},
    {ggml_type::q8_k, "Q8_K", 256, 292},
    {ggml_type::iq2_xxs, "IQ2_XXS", 256, 66},
    {ggml_type::iq2_xs, "IQ2_XS", 256, 74},
    {ggml_type::iq3_xxs, "IQ3_XXS", 256, 98},
    {ggml_type::iq1_s, "IQ1_S", 256, 50},
    {ggml_type::iq4_nl, "IQ4_NL", 32, 18},
    {ggml_type::iq3_s, "IQ3_S", 256, 110},
    {ggml_type::iq2_s, "IQ2_S", 256, 82},
    {ggml_type::iq4_xs, "IQ4_XS", 256, 136},
    {ggml_type::i8, "I8", 1, 1},
    {ggml_type::i16, "I16", 1, 2},
    {ggml_type::i32, "I32", 1, 4},
    {ggml_type::i64, "I64", 1, 8},
    {ggml_type::f64, "F64", 1, 8},
    {ggml_type::iq1_m, "IQ1_M", 256, 56},
    {ggml_type::bf16, "BF16", 1, 2},
    {ggml_type::tq1_0, "TQ1_0", 256, 54},
    {ggml_type::tq2_0, "TQ2_0", 256, 66},
    {ggml_type::mxfp4, "MXFP4", 32, 17},
};

const type_layout* find_layout(ggml_type type) {
    for (const type_layout& layout : layouts)
        if (layout.type == type) return &layout;
    return nullptr;
}

const type_layout& known_layout(ggml_type type) {
    const type_layout* layout = find_layout(type);
    if (!layout) throw gguf_error("unknown tensor type " + std::to_string(std::uint32_t(type)));
    return *layout;
}

}  // namespace

const char* to_string(ggml_type type) {
    const type_layout* layout = find_layout(type);
    return layout ? layout->name : "unknown";
}

bool is_known_type(ggml_type type) { return find_layout(type) != nullptr; }

std::int64_t block_elements(ggml_type type) { return known_layout(type).block_elements; }

std::size_t block_bytes(ggml_type type) { return known_layout(type).block_bytes; }

}  // namespace atman::engine
