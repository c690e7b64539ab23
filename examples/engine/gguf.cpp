#include "gguf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <utility>

#include "gguf_types.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the GGUF reader assumes a little-endian host");

namespace atman::engine {
namespace {

using byte = std::uint8_t;

constexpr std::uint32_t gguf_magic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr std::uint64_t default_alignment = 32;
constexpr int max_array_nesting = 8;
constexpr std::uint32_t max_dims = 4;
// Smallest possible encodings, to bound counts by the bytes left.
constexpr std::uint64_t min_kv_bytes = 8 + 4 + 1;                   // key length, type, u8 value
constexpr std::uint64_t min_tensor_info_bytes = 8 + 4 + 8 + 4 + 8;  // name length, n_dims, 1 dim, type, offset

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// Fixed size in bytes of a scalar value type; 0 for string and array.
std::uint64_t scalar_size(gguf_value_type type) {
    switch (type) {
        case gguf_value_type::uint8: case gguf_value_type::int8: case gguf_value_type::boolean: return 1;
        case gguf_value_type::uint16: case gguf_value_type::int16: return 2;
        case gguf_value_type::uint32: case gguf_value_type::int32: case gguf_value_type::float32: return 4;
        case gguf_value_type::uint64: case gguf_value_type::int64: case gguf_value_type::float64: return 8;
        case gguf_value_type::string: case gguf_value_type::array: return 0;
    }
    return 0;
}

bool is_valid(gguf_value_type type) { return std::uint32_t(type) <= std::uint32_t(gguf_value_type::float64); }

bool is_integer(gguf_value_type type) {
    switch (type) {
        case gguf_value_type::uint8: case gguf_value_type::int8: case gguf_value_type::uint16:
        case gguf_value_type::int16: case gguf_value_type::uint32: case gguf_value_type::int32:
        case gguf_value_type::uint64: case gguf_value_type::int64: return true;
        default: return false;
    }
}

// Bounds-checked little-endian reads over the file's bytes; every failure
// names what was being read and the byte offset.
class reader {
public:
    reader(const byte* data, std::size_t size, std::size_t pos = 0) : data_(data), size_(size), pos_(pos) {}

    std::size_t pos() const { return pos_; }
    std::uint64_t remaining() const { return size_ - pos_; }

    [[noreturn]] void fail(const std::string& problem, std::size_t at) const {
        throw gguf_error(problem + " (at byte " + std::to_string(at) + ")");
    }
    [[noreturn]] void fail(const std::string& problem) const { fail(problem, pos_); }

    void need(std::uint64_t n, const std::string& what) const {
        if (n > remaining())
            fail("truncated file: " + what + " needs " + std::to_string(n) + " bytes, " +
                 std::to_string(remaining()) + " left");
    }

    template <class T>
    T read(const std::string& what) {
        need(sizeof(T), what);
        T value;
        std::memcpy(&value, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return value;
    }

    void skip(std::uint64_t n, const std::string& what) {
        need(n, what);
        pos_ += std::size_t(n);
    }

    std::string_view read_string(const std::string& what) {
        const auto length = read<std::uint64_t>(what + " length");
        if (length > remaining())
            fail(what + " length " + std::to_string(length) + " exceeds the " + std::to_string(remaining()) +
                 " bytes left in the file");
        std::string_view s(reinterpret_cast<const char*>(data_ + pos_), std::size_t(length));
        pos_ += std::size_t(length);
        return s;
    }

private:
    const byte* data_;
    std::size_t size_;
    std::size_t pos_;
};

// An integer metadata value of any width and signedness.
struct integer_value {
    bool negative = false;
    std::uint64_t magnitude = 0;
};

integer_value read_integer(reader& in, gguf_value_type type) {
    const auto from_signed = [](std::int64_t v) {
        return integer_value{v < 0, v < 0 ? 0 - std::uint64_t(v) : std::uint64_t(v)};
    };
    switch (type) {
        case gguf_value_type::uint8: return {false, in.read<std::uint8_t>("u8")};
        case gguf_value_type::uint16: return {false, in.read<std::uint16_t>("u16")};
        case gguf_value_type::uint32: return {false, in.read<std::uint32_t>("u32")};
        case gguf_value_type::uint64: return {false, in.read<std::uint64_t>("u64")};
        case gguf_value_type::int8: return from_signed(in.read<std::int8_t>("i8"));
        case gguf_value_type::int16: return from_signed(in.read<std::int16_t>("i16"));
        case gguf_value_type::int32: return from_signed(in.read<std::int32_t>("i32"));
        case gguf_value_type::int64: return from_signed(in.read<std::int64_t>("i64"));
        default: in.fail(std::string("expected an integer, found ") + to_string(type));
    }
}

std::int64_t to_int64(integer_value v, const std::string& what) {
    constexpr auto max = std::uint64_t(std::numeric_limits<std::int64_t>::max());
    if (!v.negative && v.magnitude > max) throw gguf_error(what + " does not fit a signed 64-bit integer");
    if (!v.negative) return std::int64_t(v.magnitude);
    return v.magnitude == max + 1 ? std::numeric_limits<std::int64_t>::min() : -std::int64_t(v.magnitude);
}

// Checks one value of the given type at the reader's position and steps over it.
void skip_value(reader& in, gguf_value_type type, const std::string& key, int nesting) {
    if (!is_valid(type))
        in.fail("key " + quoted(key) + " has unknown value type " + std::to_string(std::uint32_t(type)));
    if (type == gguf_value_type::string) {
        in.read_string("string value of key " + quoted(key));
    } else if (type == gguf_value_type::array) {
        if (nesting >= max_array_nesting)
            in.fail("key " + quoted(key) + " nests arrays deeper than " + std::to_string(max_array_nesting));
        const auto element = gguf_value_type(in.read<std::uint32_t>("array element type of key " + quoted(key)));
        if (!is_valid(element))
            in.fail("array of key " + quoted(key) + " has unknown element type " +
                    std::to_string(std::uint32_t(element)));
        const std::size_t count_at = in.pos();
        const auto count = in.read<std::uint64_t>("array length of key " + quoted(key));
        // strings take at least their 8-byte length, arrays their 12-byte header
        const std::uint64_t min_element = element == gguf_value_type::string  ? 8
                                          : element == gguf_value_type::array ? 12
                                                                              : scalar_size(element);
        if (count > in.remaining() / min_element)
            in.fail("array length " + std::to_string(count) + " of key " + quoted(key) + " exceeds the " +
                        std::to_string(in.remaining()) + " bytes left in the file",
                    count_at);
        if (scalar_size(element) > 0) {
            in.skip(count * scalar_size(element), "array of key " + quoted(key));
        } else {
            for (std::uint64_t i = 0; i < count; ++i) skip_value(in, element, key, nesting + 1);
        }
    } else {
        in.skip(scalar_size(type), std::string(to_string(type)) + " value of key " + quoted(key));
    }
}

struct metadata_entry {
    std::string key;
    gguf_value_type type;
    std::size_t value_pos;  // file offset of the value (for arrays: of the element type)
};

std::uint64_t checked_product(std::uint64_t a, std::uint64_t b, bool& overflow) {
    if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) overflow = true;
    return a * b;
}

}  // namespace

const char* to_string(gguf_value_type type) {
    switch (type) {
        case gguf_value_type::uint8: return "u8";
        case gguf_value_type::int8: return "i8";
        case gguf_value_type::uint16: return "u16";
        case gguf_value_type::int16: return "i16";
        case gguf_value_type::uint32: return "u32";
        case gguf_value_type::int32: return "i32";
        case gguf_value_type::float32: return "f32";
        case gguf_value_type::boolean: return "bool";
        case gguf_value_type::string: return "string";
        case gguf_value_type::array: return "array";
        case gguf_value_type::uint64: return "u64";
        case gguf_value_type::int64: return "i64";
        case gguf_value_type::float64: return "f64";
    }
    return "unknown";
}

std::int64_t tensor_info::rows() const {
    std::int64_t r = 1;
    for (std::size_t i = 1; i < dims.size(); ++i) r *= dims[i];
    return r;
}

struct gguf_file::impl {
    std::vector<byte> owned;     // from_bytes
    void* mapping = nullptr;     // open
    std::size_t mapping_size = 0;
    const byte* bytes = nullptr;
    std::size_t size = 0;

    std::uint32_t version = 0;
    std::uint64_t alignment = default_alignment;
    std::uint64_t data_offset = 0;
    std::vector<metadata_entry> metadata;
    std::map<std::string, std::size_t, std::less<>> metadata_index;
    std::vector<tensor_info> tensors;
    std::map<std::string, std::size_t, std::less<>> tensor_index;

    impl() = default;
    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;
    ~impl() {
        if (mapping) munmap(mapping, mapping_size);
    }

    void parse();
    void parse_header(reader& in, std::uint64_t& n_tensors, std::uint64_t& n_kv);
    void parse_metadata(reader& in, std::uint64_t n_kv);
    void read_alignment();
    void parse_tensor_infos(reader& in, std::uint64_t n_tensors);
    void place_tensors(std::size_t end_of_infos);

    const metadata_entry& entry(std::string_view key) const;
    const metadata_entry& entry(std::string_view key, gguf_value_type expected) const;
    integer_value integer(std::string_view key) const;
    // A reader at the first element of the array under key; sets its element type and length.
    reader array_of(std::string_view key, gguf_value_type& element, std::uint64_t& count) const;
    reader at(std::size_t pos) const { return reader(bytes, size, pos); }
};

void gguf_file::impl::parse() {
    reader in(bytes, size);
    std::uint64_t n_tensors = 0, n_kv = 0;
    parse_header(in, n_tensors, n_kv);
    parse_metadata(in, n_kv);
    read_alignment();
    parse_tensor_infos(in, n_tensors);
    place_tensors(in.pos());
}

void gguf_file::impl::parse_header(reader& in, std::uint64_t& n_tensors, std::uint64_t& n_kv) {
    const auto magic = in.read<std::uint32_t>("magic");
    if (magic != gguf_magic) {
        char hex[11];
        std::snprintf(hex, sizeof hex, "0x%08x", unsigned(magic));
        in.fail(std::string("bad magic: not a GGUF file (expected 0x46554747 = 'GGUF', found ") + hex + ")", 0);
    }
    version = in.read<std::uint32_t>("version");
    if (version == 1)
        in.fail("GGUF version 1 is not supported (it uses 32-bit counts); convert the file to version 3", 4);
    if (version != 2 && version != 3)
        in.fail("unsupported GGUF version " + std::to_string(version) + " (supported: 2 and 3)", 4);
    n_tensors = in.read<std::uint64_t>("tensor count");
    n_kv = in.read<std::uint64_t>("metadata count");
    if (n_kv > in.remaining() / min_kv_bytes)
        in.fail("metadata count " + std::to_string(n_kv) + " exceeds what the " + std::to_string(in.remaining()) +
                    " bytes left in the file can hold",
                16);
    if (n_tensors > (in.remaining() - n_kv * min_kv_bytes) / min_tensor_info_bytes)
        in.fail("tensor count " + std::to_string(n_tensors) + " exceeds what the " +
                    std::to_string(in.remaining()) + " bytes left in the file can hold",
                8);
}

void gguf_file::impl::parse_metadata(reader& in, std::uint64_t n_kv) {
    metadata.reserve(std::size_t(n_kv));
    for (std::uint64_t i = 0; i < n_kv; ++i) {
        const std::size_t key_at = in.pos();
        std::string key(in.read_string("key of metadata entry " + std::to_string(i)));
        if (metadata_index.count(key)) in.fail("duplicate metadata key " + quoted(key), key_at);
        const auto type = gguf_value_type(in.read<std::uint32_t>("value type of key " + quoted(key)));
        const std::size_t value_pos = in.pos();
        skip_value(in, type, key, 0);
        metadata_index.emplace(key, metadata.size());
        metadata.push_back({std::move(key), type, value_pos});
    }
}

void gguf_file::impl::read_alignment() {
    const std::string_view key = "general.alignment";
    if (!metadata_index.count(key)) return;
    const integer_value value = integer(key);
    constexpr std::uint64_t max_alignment = std::uint64_t(1) << 30;
    if (value.negative || value.magnitude == 0 || (value.magnitude & (value.magnitude - 1)) != 0 ||
        value.magnitude > max_alignment)
        throw gguf_error("general.alignment must be a power of two no larger than 2^30, got " +
                         std::string(value.negative ? "-" : "") + std::to_string(value.magnitude));
    alignment = value.magnitude;
}

void gguf_file::impl::parse_tensor_infos(reader& in, std::uint64_t n_tensors) {
    tensors.reserve(std::size_t(n_tensors));
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
        const std::size_t info_at = in.pos();
        tensor_info t;
        t.name = std::string(in.read_string("name of tensor " + std::to_string(i)));
        if (tensor_index.count(t.name)) in.fail("duplicate tensor name " + quoted(t.name), info_at);
        const std::string what = "tensor " + quoted(t.name);

        const auto n_dims = in.read<std::uint32_t>("dimension count of " + what);
        if (n_dims == 0 || n_dims > max_dims)
            in.fail(what + " has n_dims " + std::to_string(n_dims) + "; 1 to " + std::to_string(max_dims) +
                        " are supported",
                    in.pos() - 4);
        bool overflow = false;
        std::uint64_t n_elements = 1;
        for (std::uint32_t d = 0; d < n_dims; ++d) {
            const auto dim = in.read<std::uint64_t>("dimension " + std::to_string(d) + " of " + what);
            if (dim == 0) in.fail(what + " has dimension " + std::to_string(d) + " equal to 0", in.pos() - 8);
            n_elements = checked_product(n_elements, dim, overflow);
            t.dims.push_back(std::int64_t(dim & std::uint64_t(std::numeric_limits<std::int64_t>::max())));
        }
        if (overflow || n_elements > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
            in.fail(what + " has so many elements that their count overflows", info_at);
        t.n_elements = std::int64_t(n_elements);

        const std::size_t type_at = in.pos();
        t.type = ggml_type(in.read<std::uint32_t>("type of " + what));
        if (!is_known_type(t.type))
            in.fail(what + " has unknown type " + std::to_string(std::uint32_t(t.type)), type_at);
        const std::int64_t per_block = block_elements(t.type);
        if (t.dims[0] % per_block != 0)
            in.fail(what + " row length " + std::to_string(t.dims[0]) + " is not a multiple of the " +
                        to_string(t.type) + " block size " + std::to_string(per_block),
                    info_at);
        t.n_bytes = checked_product(n_elements / std::uint64_t(per_block), block_bytes(t.type), overflow);
        if (overflow) in.fail(what + " size in bytes overflows", info_at);

        const std::size_t offset_at = in.pos();
        t.offset = in.read<std::uint64_t>("data offset of " + what);
        if (t.offset % alignment != 0)
            in.fail(what + " data offset " + std::to_string(t.offset) + " is misaligned (not a multiple of " +
                        std::to_string(alignment) + ")",
                    offset_at);
        tensor_index.emplace(t.name, tensors.size());
        tensors.push_back(std::move(t));
    }
}

void gguf_file::impl::place_tensors(std::size_t end_of_infos) {
    data_offset = (end_of_infos + alignment - 1) / alignment * alignment;
    if (tensors.empty()) return;
    if (data_offset > size)
        throw gguf_error("truncated file: the data section would start at byte " + std::to_string(data_offset) +
                         ", past the end of the file (" + std::to_string(size) + " bytes)");
    const std::uint64_t data_size = size - data_offset;
    for (tensor_info& t : tensors) {
        if (t.offset > data_size || t.n_bytes > data_size - t.offset)
            throw gguf_error("tensor " + quoted(t.name) + " data (offset " + std::to_string(t.offset) + ", " +
                             std::to_string(t.n_bytes) + " bytes) extends past the end of the file (the data " +
                             "section at byte " + std::to_string(data_offset) + " holds " +
                             std::to_string(data_size) + " bytes)");
        t.data = bytes + data_offset + t.offset;
    }
    std::vector<const tensor_info*> by_offset;
    by_offset.reserve(tensors.size());
    for (const tensor_info& t : tensors) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const tensor_info* a, const tensor_info* b) { return a->offset < b->offset; });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
        const tensor_info& a = *by_offset[i - 1];
        const tensor_info& b = *by_offset[i];
        if (a.offset + a.n_bytes > b.offset)
            throw gguf_error("tensors " + quoted(a.name) + " and " + quoted(b.name) +
                             " overlap in the data section (at byte " + std::to_string(data_offset + b.offset) +
                             ")");
    }
}

const metadata_entry& gguf_file::impl::entry(std::string_view key) const {
    const auto found = metadata_index.find(key);
    if (found == metadata_index.end()) throw gguf_error("metadata key " + quoted(key) + " is missing");
    return metadata[found->second];
}

const metadata_entry& gguf_file::impl::entry(std::string_view key, gguf_value_type expected) const {
    const metadata_entry& e = entry(key);
    if (e.type != expected)
        throw gguf_error("metadata key " + quoted(key) + " has type " + to_string(e.type) + ", expected " +
                         to_string(expected));
    return e;
}

integer_value gguf_file::impl::integer(std::string_view key) const {
    const metadata_entry& e = entry(key);
    if (!is_integer(e.type))
        throw gguf_error("metadata key " + quoted(key) + " has type " + to_string(e.type) + ", expected an integer");
    reader in = at(e.value_pos);
    return read_integer(in, e.type);
}

reader gguf_file::impl::array_of(std::string_view key, gguf_value_type& element, std::uint64_t& count) const {
    reader in = at(entry(key, gguf_value_type::array).value_pos);
    element = gguf_value_type(in.read<std::uint32_t>("array element type"));
    count = in.read<std::uint64_t>("array length");
    return in;
}

gguf_file::gguf_file(std::unique_ptr<impl> state) : impl_(std::move(state)) {}
gguf_file::gguf_file(gguf_file&&) noexcept = default;
gguf_file& gguf_file::operator=(gguf_file&&) noexcept = default;
gguf_file::~gguf_file() = default;

namespace {
// Closes a file descriptor when leaving scope.
struct file_descriptor {
    int fd;
    ~file_descriptor() {
        if (fd >= 0) ::close(fd);
    }
};

std::string system_error(const std::string& what, const std::string& path) {
    return what + " " + quoted(path) + ": " + std::strerror(errno);
}
}  // namespace

gguf_file gguf_file::open(const std::string& path) {
    auto state = std::make_unique<impl>();
    // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever; it
    // changes nothing for the regular files that get past the check below.
    const file_descriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
    if (file.fd < 0) throw gguf_error(system_error("cannot open", path));
    struct stat info {};
    if (::fstat(file.fd, &info) != 0) throw gguf_error(system_error("cannot stat", path));
    if (!S_ISREG(info.st_mode)) throw gguf_error(quoted(path) + " is not a regular file");
    if (info.st_size > 0) {
        const auto size = std::size_t(info.st_size);
        void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, file.fd, 0);
        if (mapping == MAP_FAILED) throw gguf_error(system_error("cannot map", path));
        state->mapping = mapping;
        state->mapping_size = size;
        state->bytes = static_cast<const byte*>(mapping);
        state->size = size;
    }
    try {
        state->parse();
    } catch (const gguf_error& e) {
        throw gguf_error(path + ": " + e.what());
    }
    return gguf_file(std::move(state));
}

gguf_file gguf_file::from_bytes(std::vector<std::uint8_t> bytes) {
    auto state = std::make_unique<impl>();
    state->owned = std::move(bytes);
    state->bytes = state->owned.data();
    state->size = state->owned.size();
    state->parse();
    return gguf_file(std::move(state));
}

std::uint32_t gguf_file::version() const { return impl_->version; }
std::uint64_t gguf_file::alignment() const { return impl_->alignment; }
std::uint64_t gguf_file::data_offset() const { return impl_->data_offset; }

bool gguf_file::has(std::string_view key) const { return impl_->metadata_index.count(key) != 0; }

gguf_value_type gguf_file::type_of(std::string_view key) const { return impl_->entry(key).type; }

std::string gguf_file::get_string(std::string_view key) const {
    reader in = impl_->at(impl_->entry(key, gguf_value_type::string).value_pos);
    return std::string(in.read_string("string"));
}

std::uint64_t gguf_file::get_uint(std::string_view key) const {
    const integer_value value = impl_->integer(key);
    if (value.negative)
        throw gguf_error("metadata key " + quoted(key) + " is negative (-" + std::to_string(value.magnitude) +
                         "), expected a non-negative integer");
    return value.magnitude;
}

std::int64_t gguf_file::get_int(std::string_view key) const {
    return to_int64(impl_->integer(key), "metadata key " + quoted(key));
}

double gguf_file::get_float(std::string_view key) const {
    const metadata_entry& e = impl_->entry(key);
    reader in = impl_->at(e.value_pos);
    if (e.type == gguf_value_type::float32) return in.read<float>("f32");
    if (e.type == gguf_value_type::float64) return in.read<double>("f64");
    throw gguf_error("metadata key " + quoted(key) + " has type " + to_string(e.type) + ", expected f32 or f64");
}

bool gguf_file::get_bool(std::string_view key) const {
    reader in = impl_->at(impl_->entry(key, gguf_value_type::boolean).value_pos);
    return in.read<std::uint8_t>("bool") != 0;
}

std::vector<std::string> gguf_file::get_string_array(std::string_view key) const {
    gguf_value_type element{};
    std::uint64_t count = 0;
    reader in = impl_->array_of(key, element, count);
    if (element != gguf_value_type::string)
        throw gguf_error("metadata key " + quoted(key) + " is an array of " + to_string(element) +
                         ", expected an array of string");
    std::vector<std::string> values;
    values.reserve(std::size_t(count));  // bounded by the file size when parsed
    for (std::uint64_t i = 0; i < count; ++i) values.emplace_back(in.read_string("string"));
    return values;
}

std::vector<std::int64_t> gguf_file::get_int_array(std::string_view key) const {
    gguf_value_type element{};
    std::uint64_t count = 0;
    reader in = impl_->array_of(key, element, count);
    if (!is_integer(element))
        throw gguf_error("metadata key " + quoted(key) + " is an array of " + to_string(element) +
                         ", expected an array of integers");
    std::vector<std::int64_t> values;
    values.reserve(std::size_t(count));
    const std::string what = "element of metadata key " + quoted(key);
    for (std::uint64_t i = 0; i < count; ++i) values.push_back(to_int64(read_integer(in, element), what));
    return values;
}

std::vector<std::string> gguf_file::keys() const {
    std::vector<std::string> result;
    result.reserve(impl_->metadata.size());
    for (const metadata_entry& e : impl_->metadata) result.push_back(e.key);
    return result;
}

const std::vector<tensor_info>& gguf_file::tensors() const { return impl_->tensors; }

const tensor_info* gguf_file::find_tensor(std::string_view name) const {
    const auto found = impl_->tensor_index.find(name);
    return found == impl_->tensor_index.end() ? nullptr : &impl_->tensors[found->second];
}

const tensor_info& gguf_file::tensor(std::string_view name) const {
    const tensor_info* t = find_tensor(name);
    if (!t) throw gguf_error("tensor " + quoted(name) + " is not in the file");
    return *t;
}

}  // namespace atman::engine
