#pragma once
// A read-only GGUF file (versions 2 and 3): metadata and tensor infos, all
// validated before use; tensor data stays in the memory-mapped file.

#include <atman/error.hpp>

#include "gguf_types.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace atman::engine {

// Metadata value types, with the ids GGUF files store.
enum class gguf_value_type : std::uint32_t {
    uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6,
    boolean = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12
};

const char* to_string(gguf_value_type type);

struct tensor_info {
    std::string name;
    ggml_type type = ggml_type::f32;
    std::vector<std::int64_t> dims;      // GGUF order: dims[0] is the contiguous (row) length
    std::uint64_t offset = 0;            // relative to the data section
    std::int64_t n_elements = 0;
    std::uint64_t n_bytes = 0;
    const std::uint8_t* data = nullptr;  // points into the mapped file

    std::int64_t rows() const;           // product of dims[1..]
};

class gguf_file {
public:
    // Maps the file read-only (POSIX mmap) and validates it.
    static gguf_file open(const std::string& path);
    // Validates an in-memory file (tests, fuzzing).
    static gguf_file from_bytes(std::vector<std::uint8_t> bytes);

    gguf_file(gguf_file&&) noexcept;
    gguf_file& operator=(gguf_file&&) noexcept;
    gguf_file(const gguf_file&) = delete;
    gguf_file& operator=(const gguf_file&) = delete;
    ~gguf_file();

    std::uint32_t version() const;
    std::uint64_t alignment() const;      // general.alignment, 32 when absent
    std::uint64_t data_offset() const;    // file offset of the data section

    // Metadata. Each getter throws gguf_error naming the key if it is missing
    // or holds a value of another type.
    bool has(std::string_view key) const;
    gguf_value_type type_of(std::string_view key) const;
    std::string get_string(std::string_view key) const;
    std::uint64_t get_uint(std::string_view key) const;   // any integer type, value >= 0
    std::int64_t get_int(std::string_view key) const;     // any integer type, value fits int64
    double get_float(std::string_view key) const;         // float32 or float64
    bool get_bool(std::string_view key) const;
    std::vector<std::string> get_string_array(std::string_view key) const;
    std::vector<std::int64_t> get_int_array(std::string_view key) const;  // any integer elements
    std::vector<std::string> keys() const;                // in file order

    // Tensors, in file order.
    const std::vector<tensor_info>& tensors() const;
    const tensor_info* find_tensor(std::string_view name) const;  // nullptr if absent
    const tensor_info& tensor(std::string_view name) const;       // throws gguf_error naming it

private:
    struct impl;
    explicit gguf_file(std::unique_ptr<impl> state);
    std::unique_ptr<impl> impl_;
};

}  // namespace atman::engine
