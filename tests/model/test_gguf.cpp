// The GGUF reader: the real default model, a small file written here, and
// that file broken in every way the reader must refuse (each a gguf_error
// that names the problem, never a crash or bad_alloc).

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "engine/dequant.hpp"
#include "engine/gguf.hpp"
#include "support/default_model.hpp"

using namespace atman::engine;
using bytes = std::vector<std::uint8_t>;

namespace {

// ---- a tiny GGUF writer, independent of the reader ----

template <class T>
void put(bytes& out, T value) {
    const auto* raw = reinterpret_cast<const std::uint8_t*>(&value);
    for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(raw[i]);  // little-endian hosts, like GGUF
}

void put_string(bytes& out, const std::string& s) {
    put<std::uint64_t>(out, s.size());
    out.insert(out.end(), s.begin(), s.end());
}

bytes concat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// Value type ids of the GGUF format.
enum : std::uint32_t { t_u8 = 0, t_i8, t_u16, t_i16, t_u32, t_i32, t_f32, t_bool, t_string, t_array, t_u64, t_i64, t_f64 };

// One metadata entry: key, value type id, encoded value.
bytes kv(const std::string& key, std::uint32_t type, const bytes& value) {
    bytes out;
    put_string(out, key);
    put(out, type);
    return concat({out, value});
}

template <class T>
bytes scalar(T value) {
    bytes out;
    put(out, value);
    return out;
}

bytes string_value(const std::string& s) {
    bytes out;
    put_string(out, s);
    return out;
}

bytes array_header(std::uint32_t element_type, std::uint64_t count) {
    bytes out;
    put(out, element_type);
    put(out, count);
    return out;
}

struct tensor_spec {
    std::string name;
    std::vector<std::uint64_t> dims;
    std::uint32_t type;
    std::uint64_t offset;
};

struct file_spec {
    std::uint32_t magic = 0x46554747;  // "GGUF"
    std::uint32_t version = 3;
    std::vector<bytes> kvs;
    std::vector<tensor_spec> tensors;
    std::uint64_t alignment = 32;
    std::size_t data_bytes = 0;
    // counts written in the header when not the real ones
    std::uint64_t n_tensors_override = 0, n_kv_override = 0;

    // Bytes of the header, metadata and tensor infos (without padding/data).
    bytes head() const {
        bytes out;
        put(out, magic);
        put(out, version);
        put<std::uint64_t>(out, n_tensors_override ? n_tensors_override : tensors.size());
        put<std::uint64_t>(out, n_kv_override ? n_kv_override : kvs.size());
        for (const bytes& entry : kvs) out.insert(out.end(), entry.begin(), entry.end());
        for (const tensor_spec& t : tensors) {
            put_string(out, t.name);
            put<std::uint32_t>(out, std::uint32_t(t.dims.size()));
            for (std::uint64_t d : t.dims) put(out, d);
            put(out, t.type);
            put(out, t.offset);
        }
        return out;
    }

    bytes build() const {
        bytes out = head();
        while (out.size() % alignment != 0) out.push_back(0);
        for (std::size_t i = 0; i < data_bytes; ++i) out.push_back(std::uint8_t(i % 251));
        return out;
    }
};

constexpr std::uint32_t type_f32 = 0, type_q4_1 = 3, type_q8_0 = 8;

// A valid file with every value type and three tensors:
//   a: F32 [4, 2] at 0 (32 bytes), b: Q8_0 [32] at 32 (34 bytes), c: Q4_1 [32, 2] at 96 (40 bytes).
file_spec small_file() {
    file_spec f;
    bytes nested = array_header(t_array, 2);
    for (std::uint8_t n : {std::uint8_t(2), std::uint8_t(1)}) {
        nested = concat({nested, array_header(t_u8, n)});
        for (std::uint8_t i = 0; i < n; ++i) nested.push_back(std::uint8_t(10 + i));
    }
    f.kvs = {
        kv("general.architecture", t_string, string_value("llama")),
        kv("test.u8", t_u8, scalar<std::uint8_t>(200)),
        kv("test.i8", t_i8, scalar<std::int8_t>(-100)),
        kv("test.u16", t_u16, scalar<std::uint16_t>(60000)),
        kv("test.i16", t_i16, scalar<std::int16_t>(-30000)),
        kv("test.u32", t_u32, scalar<std::uint32_t>(4000000000u)),
        kv("test.i32", t_i32, scalar<std::int32_t>(-2000000000)),
        kv("test.f32", t_f32, scalar<float>(0.25f)),
        kv("test.bool", t_bool, scalar<std::uint8_t>(1)),
        kv("test.u64", t_u64, scalar<std::uint64_t>(18446744073709551615ull)),
        kv("test.i64", t_i64, scalar<std::int64_t>(-9000000000000000000ll)),
        kv("test.f64", t_f64, scalar<double>(-1.5e300)),
        kv("test.empty", t_string, string_value("")),
        kv("test.ints", t_array,
           concat({array_header(t_i16, 3), scalar<std::int16_t>(1), scalar<std::int16_t>(-2), scalar<std::int16_t>(3)})),
        kv("test.strings", t_array, concat({array_header(t_string, 2), string_value("a"), string_value("bc")})),
        kv("test.nested", t_array, nested),
    };
    f.tensors = {{"a", {4, 2}, type_f32, 0}, {"b", {32}, type_q8_0, 32}, {"c", {32, 2}, type_q4_1, 96}};
    f.data_bytes = 136;
    return f;
}

// The message of the gguf_error that parsing the bytes must throw.
std::string parse_error(const bytes& file) {
    try {
        gguf_file::from_bytes(file);
    } catch (const gguf_error& e) {
        return e.what();
    }
    FAIL("no gguf_error for a malformed file");
    return {};
}

}  // namespace

TEST_CASE("gguf: a small valid file reads back every value type", "[gguf]") {
    const gguf_file f = gguf_file::from_bytes(small_file().build());
    CHECK(f.version() == 3);
    CHECK(f.alignment() == 32);
    CHECK(f.keys().size() == 16);
    CHECK(f.keys().front() == "general.architecture");
    CHECK(f.has("test.u8"));
    CHECK_FALSE(f.has("test.missing"));
    CHECK(f.get_string("general.architecture") == "llama");
    CHECK(f.get_uint("test.u8") == 200);
    CHECK(f.get_int("test.i8") == -100);
    CHECK(f.get_uint("test.u16") == 60000);
    CHECK(f.get_int("test.i16") == -30000);
    CHECK(f.get_uint("test.u32") == 4000000000u);
    CHECK(f.get_int("test.u32") == 4000000000ll);
    CHECK(f.get_int("test.i32") == -2000000000);
    CHECK(f.get_float("test.f32") == 0.25);
    CHECK(f.get_bool("test.bool"));
    CHECK(f.get_uint("test.u64") == 18446744073709551615ull);
    CHECK(f.get_int("test.i64") == -9000000000000000000ll);
    CHECK(f.get_float("test.f64") == -1.5e300);
    CHECK(f.get_string("test.empty").empty());
    CHECK(f.get_int_array("test.ints") == std::vector<std::int64_t>{1, -2, 3});
    CHECK(f.get_string_array("test.strings") == std::vector<std::string>{"a", "bc"});
    CHECK(f.type_of("test.nested") == gguf_value_type::array);
}

TEST_CASE("gguf: getters name the key when it is missing or of another type", "[gguf]") {
    const gguf_file f = gguf_file::from_bytes(small_file().build());
    CHECK_THROWS_WITH(f.get_string("test.missing"), Catch::Contains("test.missing") && Catch::Contains("missing"));
    CHECK_THROWS_AS(f.get_string("test.u8"), gguf_error);
    CHECK_THROWS_WITH(f.get_string("test.u8"), Catch::Contains("test.u8") && Catch::Contains("string"));
    CHECK_THROWS_WITH(f.get_uint("test.i8"), Catch::Contains("test.i8") && Catch::Contains("negative"));
    CHECK_THROWS_WITH(f.get_int("test.u64"), Catch::Contains("test.u64"));
    CHECK_THROWS_WITH(f.get_uint("test.f32"), Catch::Contains("test.f32") && Catch::Contains("integer"));
    CHECK_THROWS_WITH(f.get_float("test.u8"), Catch::Contains("test.u8"));
    CHECK_THROWS_WITH(f.get_bool("test.u8"), Catch::Contains("test.u8"));
    CHECK_THROWS_WITH(f.get_string_array("test.ints"), Catch::Contains("test.ints"));
    CHECK_THROWS_WITH(f.get_int_array("test.strings"), Catch::Contains("test.strings"));
    CHECK_THROWS_WITH(f.get_int_array("test.u8"), Catch::Contains("test.u8") && Catch::Contains("array"));
}

TEST_CASE("gguf: tensor infos and data of a small file", "[gguf]") {
    const file_spec spec = small_file();
    const bytes file = spec.build();
    const gguf_file f = gguf_file::from_bytes(file);
    REQUIRE(f.tensors().size() == 3);
    const std::size_t data_start = (spec.head().size() + 31) / 32 * 32;
    CHECK(f.data_offset() == data_start);

    const tensor_info& a = f.tensor("a");
    CHECK(a.type == ggml_type::f32);
    CHECK(a.dims == std::vector<std::int64_t>{4, 2});
    CHECK(a.n_elements == 8);
    CHECK(a.rows() == 2);
    CHECK(a.n_bytes == 32);
    const tensor_info& b = f.tensor("b");
    CHECK((b.type == ggml_type::q8_0 && b.n_bytes == 34 && b.offset == 32 && b.rows() == 1));
    const tensor_info& c = f.tensor("c");
    CHECK((c.type == ggml_type::q4_1 && c.n_bytes == 40 && c.offset == 96 && c.n_elements == 64));
    CHECK(f.tensors()[2].name == "c");

    // the data pointers see the bytes the writer put at data_start + offset
    for (const tensor_info& t : f.tensors())
        for (std::uint64_t i = 0; i < t.n_bytes; ++i) REQUIRE(t.data[i] == std::uint8_t((t.offset + i) % 251));

    CHECK(f.find_tensor("d") == nullptr);
    CHECK(f.find_tensor("b") == &b);
    CHECK_THROWS_WITH(f.tensor("d"), Catch::Contains("'d'"));
}

TEST_CASE("gguf: version 2 and a larger general.alignment are accepted", "[gguf]") {
    file_spec spec = small_file();
    spec.version = 2;
    spec.alignment = 64;
    spec.kvs.push_back(kv("general.alignment", t_u32, scalar<std::uint32_t>(64)));
    spec.tensors[1].offset = 64;
    spec.tensors[2].offset = 128;
    spec.data_bytes = 168;
    const gguf_file f = gguf_file::from_bytes(spec.build());
    CHECK(f.version() == 2);
    CHECK(f.alignment() == 64);
    CHECK(f.data_offset() % 64 == 0);
    CHECK(f.tensor("c").offset == 128);
}

TEST_CASE("gguf: a file cut short anywhere is refused", "[gguf][malformed]") {
    const file_spec spec = small_file();
    const bytes file = spec.build();
    const std::size_t head = spec.head().size();
    for (std::size_t length = 0; length < file.size(); ++length) {
        INFO("truncated to " << length << " of " << file.size() << " bytes");
        const std::string message = parse_error(bytes(file.begin(), file.begin() + std::ptrdiff_t(length)));
        if (length < head)
            CHECK_THAT(message, Catch::Contains("truncated") || Catch::Contains("exceeds"));
        else
            CHECK_THAT(message, Catch::Contains("truncated") || Catch::Contains("past the end"));
    }
}

TEST_CASE("gguf: malformed headers", "[gguf][malformed]") {
    file_spec spec = small_file();
    SECTION("bad magic") {
        spec.magic = 0x46554746;
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("magic"));
    }
    SECTION("version 1") {
        spec.version = 1;
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("version 1"));
    }
    SECTION("version 99") {
        spec.version = 99;
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("version 99"));
    }
    SECTION("huge metadata count") {
        spec.n_kv_override = std::uint64_t(1) << 60;
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("metadata count"));
    }
    SECTION("huge tensor count") {
        spec.n_tensors_override = std::uint64_t(1) << 60;
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("tensor count"));
    }
    SECTION("more metadata entries than written") {
        spec.n_kv_override = spec.kvs.size() + 1;
        CHECK_THROWS_AS(gguf_file::from_bytes(spec.build()), gguf_error);
    }
}

TEST_CASE("gguf: malformed metadata", "[gguf][malformed]") {
    file_spec spec = small_file();
    SECTION("huge string length") {
        bytes value;
        put<std::uint64_t>(value, std::uint64_t(1) << 60);
        value.insert(value.end(), {'a', 'b', 'c'});
        spec.kvs.push_back(kv("test.long", t_string, value));
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("test.long") && Catch::Contains("length"));
    }
    SECTION("huge key length") {
        bytes entry;
        put<std::uint64_t>(entry, ~std::uint64_t(0));
        spec.kvs.insert(spec.kvs.begin(), entry);
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("key") && Catch::Contains("length"));
    }
    SECTION("huge array length") {
        spec.kvs.push_back(kv("test.big", t_array, array_header(t_u8, std::uint64_t(1) << 60)));
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("array length") && Catch::Contains("test.big"));
    }
    SECTION("huge array of strings") {
        spec.kvs.push_back(kv("test.big", t_array, array_header(t_string, std::uint64_t(1) << 61)));
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("array length") && Catch::Contains("test.big"));
    }
    SECTION("array length whose byte size overflows") {
        spec.kvs.push_back(kv("test.big", t_array, array_header(t_u64, std::uint64_t(1) << 61)));
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("array length"));
    }
    SECTION("unknown value type") {
        spec.kvs.push_back(kv("test.odd", 13, scalar<std::uint32_t>(0)));
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("test.odd") && Catch::Contains("value type 13"));
    }
    SECTION("unknown array element type") {
        spec.kvs.push_back(kv("test.odd", t_array, array_header(99, 1)));
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("test.odd") && Catch::Contains("element type 99"));
    }
    SECTION("arrays nested too deep") {
        bytes value;
        for (int i = 0; i < 100; ++i) value = concat({value, array_header(t_array, 1)});
        value = concat({value, array_header(t_u8, 0)});
        spec.kvs.push_back(kv("test.deep", t_array, value));
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("test.deep") && Catch::Contains("nests"));
    }
    SECTION("duplicate key") {
        spec.kvs.push_back(kv("test.u8", t_u8, scalar<std::uint8_t>(1)));
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("duplicate") && Catch::Contains("test.u8"));
    }
    SECTION("alignment not a power of two") {
        spec.kvs.push_back(kv("general.alignment", t_u32, scalar<std::uint32_t>(48)));
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("general.alignment"));
    }
    SECTION("alignment zero") {
        spec.kvs.push_back(kv("general.alignment", t_u32, scalar<std::uint32_t>(0)));
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("general.alignment"));
    }
    SECTION("alignment of a non-integer type") {
        spec.kvs.push_back(kv("general.alignment", t_string, string_value("32")));
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("general.alignment"));
    }
}

TEST_CASE("gguf: malformed tensor infos", "[gguf][malformed]") {
    file_spec spec = small_file();
    tensor_spec& c = spec.tensors[2];
    SECTION("n_dims 5") {
        c.dims = {32, 1, 1, 1, 2};
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("'c'") && Catch::Contains("n_dims 5"));
    }
    SECTION("n_dims 0") {
        c.dims = {};
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("'c'") && Catch::Contains("n_dims 0"));
    }
    SECTION("zero dimension") {
        c.dims = {32, 0};
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("'c'") && Catch::Contains("dimension 1 equal to 0"));
    }
    SECTION("dimensions whose product overflows 64 bits") {
        c.dims = {std::uint64_t(1) << 32, std::uint64_t(1) << 32};
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("'c'") && Catch::Contains("overflow"));
    }
    SECTION("dimensions whose product exceeds int64") {
        c.dims = {std::uint64_t(1) << 62, 2};
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("'c'") && Catch::Contains("overflow"));
    }
    SECTION("a dimension above int64") {
        c.dims = {~std::uint64_t(0)};
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("'c'") && Catch::Contains("overflow"));
    }
    SECTION("offset past the end") {
        c.offset = 1024;
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("'c'") && Catch::Contains("past the end"));
    }
    SECTION("offset so large that offset + size wraps") {
        c.offset = ~std::uint64_t(0) / 32 * 32;
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("'c'") && Catch::Contains("past the end"));
    }
    SECTION("misaligned offset") {
        c.offset = 100;
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("'c'") && Catch::Contains("misaligned"));
    }
    SECTION("unknown type") {
        c.type = 99;
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("'c'") && Catch::Contains("unknown type 99"));
    }
    SECTION("row length not a multiple of the block size") {
        c.dims = {16, 4};
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("'c'") && Catch::Contains("block size 32"));
    }
    SECTION("overlapping tensors") {
        c.offset = 64;  // b occupies [32, 66)
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("overlap") && Catch::Contains("'b'"));
    }
    SECTION("duplicate tensor name") {
        c.name = "a";
        CHECK_THAT(parse_error(spec.build()), Catch::Contains("duplicate tensor name 'a'"));
    }
    SECTION("huge tensor name length") {
        spec.tensors.push_back({std::string(), {1}, type_f32, 160});
        bytes file = spec.build();
        // the last info starts with the name length: overwrite it in place
        const std::size_t at = spec.head().size() - (8 + 4 + 8 + 4 + 8);
        const std::uint64_t huge = std::uint64_t(1) << 62;
        std::memcpy(file.data() + at, &huge, 8);
        CHECK_THAT(parse_error(file), Catch::Contains("name of tensor 3") && Catch::Contains("length"));
    }
}

TEST_CASE("gguf: open names the path when the file cannot be read", "[gguf]") {
    CHECK_THROWS_WITH(gguf_file::open("/nonexistent/model.gguf"), Catch::Contains("/nonexistent/model.gguf"));
    CHECK_THROWS_WITH(gguf_file::open("/"), Catch::Contains("not a regular file"));
}

TEST_CASE("gguf: the default model's metadata", "[gguf][model]") {
    const gguf_file f = gguf_file::open(atman_test::model_path());
    CHECK(f.version() == 3);
    CHECK(f.keys().size() == 33);
    CHECK(f.alignment() == 32);
    CHECK(f.get_string("general.architecture") == "llama");
    CHECK(f.get_uint("llama.block_count") == 30);
    CHECK(f.get_uint("llama.context_length") == 8192);
    CHECK(f.get_uint("llama.embedding_length") == 576);
    CHECK(f.get_uint("llama.feed_forward_length") == 1536);
    CHECK(f.get_uint("llama.attention.head_count") == 9);
    CHECK(f.get_uint("llama.attention.head_count_kv") == 3);
    CHECK(f.get_float("llama.rope.freq_base") == 100000.0);
    CHECK(float(f.get_float("llama.attention.layer_norm_rms_epsilon")) == 1e-5f);
    CHECK(f.get_uint("llama.vocab_size") == 49152);
    CHECK(f.get_uint("llama.rope.dimension_count") == 64);
    CHECK(f.get_uint("general.file_type") == 3);

    CHECK(f.get_string("tokenizer.ggml.model") == "gpt2");
    CHECK(f.get_string("tokenizer.ggml.pre") == "smollm");
    CHECK_FALSE(f.get_bool("tokenizer.ggml.add_bos_token"));
    CHECK(f.get_uint("tokenizer.ggml.bos_token_id") == 1);
    CHECK(f.get_uint("tokenizer.ggml.eos_token_id") == 2);
    CHECK(f.get_uint("tokenizer.ggml.unknown_token_id") == 0);
    CHECK(f.get_uint("tokenizer.ggml.padding_token_id") == 2);
    const auto tokens = f.get_string_array("tokenizer.ggml.tokens");
    REQUIRE(tokens.size() == 49152);
    CHECK(tokens.front() == "<|endoftext|>");
    CHECK(tokens.back() == "ectable");
    const auto token_types = f.get_int_array("tokenizer.ggml.token_type");
    REQUIRE(token_types.size() == 49152);
    CHECK(token_types.front() == 3);
    CHECK(token_types.back() == 1);
    const auto merges = f.get_string_array("tokenizer.ggml.merges");
    REQUIRE(merges.size() == 48900);
    CHECK(merges.front() == "\xc4\xa0 t");  // "Ġ t"
    CHECK(merges.back() == "ect able");
    CHECK(f.get_string("tokenizer.chat_template").rfind("{% for message in messages %}", 0) == 0);
    CHECK_THROWS_WITH(f.get_string("llama.block_count"), Catch::Contains("llama.block_count"));
}

TEST_CASE("gguf: the default model's tensors", "[gguf][model]") {
    const gguf_file f = gguf_file::open(atman_test::model_path());
    REQUIRE(f.tensors().size() == 272);
    std::map<ggml_type, int> per_type;
    for (const tensor_info& t : f.tensors()) ++per_type[t.type];
    CHECK(per_type[ggml_type::q4_1] == 210);
    CHECK(per_type[ggml_type::f32] == 61);
    CHECK(per_type[ggml_type::q8_0] == 1);
    CHECK(per_type.size() == 3);

    const tensor_info& embd = f.tensor("token_embd.weight");
    CHECK(embd.type == ggml_type::q8_0);
    CHECK(embd.dims == std::vector<std::int64_t>{576, 49152});
    CHECK(embd.rows() == 49152);
    CHECK(embd.n_bytes == 576 / 32 * 34 * 49152);
    CHECK(f.data_offset() == 1785664);  // as gguf-py's GGUFReader reports
    CHECK(embd.data == f.tensors().front().data - f.tensors().front().offset + embd.offset);
    CHECK(f.tensor("output_norm.weight").dims == std::vector<std::int64_t>{576});
    for (int layer = 0; layer < 30; ++layer) {
        const std::string p = "blk." + std::to_string(layer) + ".";
        INFO(p);
        CHECK(f.tensor(p + "attn_q.weight").dims == std::vector<std::int64_t>{576, 576});
        CHECK(f.tensor(p + "attn_k.weight").dims == std::vector<std::int64_t>{576, 192});
        CHECK(f.tensor(p + "attn_v.weight").dims == std::vector<std::int64_t>{576, 192});
        CHECK(f.tensor(p + "attn_output.weight").dims == std::vector<std::int64_t>{576, 576});
        CHECK(f.tensor(p + "ffn_gate.weight").dims == std::vector<std::int64_t>{576, 1536});
        CHECK(f.tensor(p + "ffn_up.weight").dims == std::vector<std::int64_t>{576, 1536});
        CHECK(f.tensor(p + "ffn_down.weight").dims == std::vector<std::int64_t>{1536, 576});
        CHECK(f.tensor(p + "ffn_down.weight").type == ggml_type::q4_1);
        CHECK(f.tensor(p + "attn_norm.weight").type == ggml_type::f32);
        CHECK(f.tensor(p + "ffn_norm.weight").type == ggml_type::f32);
    }
    CHECK(f.find_tensor("output.weight") == nullptr);  // tied to token_embd
}
