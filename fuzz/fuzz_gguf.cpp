// Fuzzes the GGUF reader with arbitrary files: header, metadata, tensor
// infos, dequantisation of every tensor it accepts, and the readers built on
// it (tokenizer metadata, chat template, Llama model). A malformed file must
// end in an atman::error; anything else (another exception, a sanitizer
// report, a large allocation) is a bug.

#include <atman/error.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/chat_template.hpp"
#include "engine/dequant.hpp"
#include "engine/gguf.hpp"
#include "engine/llama_model.hpp"
#include "engine/tokenizer.hpp"

namespace eng = atman::engine;

namespace {

// Reads every metadata value through the getter of its type.
void read_metadata(const eng::gguf_file& file) {
    for (const std::string& key : file.keys()) {
        try {
            switch (file.type_of(key)) {
                case eng::gguf_value_type::string: (void)file.get_string(key); break;
                case eng::gguf_value_type::boolean: (void)file.get_bool(key); break;
                case eng::gguf_value_type::float32:
                case eng::gguf_value_type::float64: (void)file.get_float(key); break;
                case eng::gguf_value_type::array:
                    (void)file.get_string_array(key);
                    break;
                default: (void)file.get_int(key); break;
            }
        } catch (const atman::error&) {
            // Wrong element type, negative or too large: reported, not a bug.
        }
        try {
            (void)file.get_int_array(key);
        } catch (const atman::error&) {
        }
        try {
            (void)file.get_uint(key);
        } catch (const atman::error&) {
        }
    }
}

void dequantize_tensors(const eng::gguf_file& file) {
    std::vector<float> values;
    for (const eng::tensor_info& t : file.tensors()) {
        if (!eng::is_supported(t.type)) continue;
        values.resize(static_cast<std::size_t>(t.n_elements));
        eng::dequantize(t.type, t.data, t.n_elements, values.data());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        const eng::gguf_file file = eng::gguf_file::from_bytes(std::vector<std::uint8_t>(data, data + size));
        read_metadata(file);
        dequantize_tensors(file);
        try {
            const eng::tokenizer tok(file);
            (void)tok.encode("Hello, world! <|im_start|>", true);
        } catch (const atman::error&) {
        }
        try {
            (void)eng::chat_template::from_gguf(file).render("What is the capital of France?");
        } catch (const atman::error&) {
        }
        (void)eng::llama_model::load(file);
    } catch (const atman::error&) {
    }
    return 0;
}
