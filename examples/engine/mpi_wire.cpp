#include "mpi_wire.hpp"

#include <atman/error.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

namespace atman::engine {

namespace {

class writer {
public:
    template <class T>
    void value(const T& v) {
        static_assert(std::is_trivially_copyable_v<T>);
        const char* bytes = reinterpret_cast<const char*>(&v);
        out_.insert(out_.end(), bytes, bytes + sizeof(T));
    }
    template <class T>
    void values(const std::vector<T>& v) {
        static_assert(std::is_trivially_copyable_v<T>);
        value(std::uint64_t(v.size()));
        const char* bytes = reinterpret_cast<const char*>(v.data());
        out_.insert(out_.end(), bytes, bytes + v.size() * sizeof(T));
    }
    void text(const std::string& s) { values(std::vector<char>(s.begin(), s.end())); }

    std::vector<char> take() { return std::move(out_); }

private:
    std::vector<char> out_;
};

class reader {
public:
    reader(const char* data, std::size_t size, const char* what) : data_(data), left_(size), what_(what) {}

    template <class T>
    T value() {
        static_assert(std::is_trivially_copyable_v<T>);
        T v;
        std::memcpy(&v, take(sizeof(T)), sizeof(T));
        return v;
    }
    template <class T>
    std::vector<T> values() {
        const std::uint64_t count = value<std::uint64_t>();
        if (count > left_ / sizeof(T)) fail("a length exceeds the bytes left");
        std::vector<T> v(count);
        if (count > 0) std::memcpy(v.data(), take(count * sizeof(T)), count * sizeof(T));
        return v;
    }
    std::string text() {
        const std::vector<char> chars = values<char>();
        return std::string(chars.begin(), chars.end());
    }
    template <class T>
    std::vector<T> each(T (reader::*read_one)()) {
        const std::uint64_t count = value<std::uint64_t>();
        if (count > left_) fail("a count exceeds the bytes left");  // every element takes a byte at least
        std::vector<T> v;
        v.reserve(count);
        for (std::uint64_t i = 0; i < count; ++i) v.push_back((this->*read_one)());
        return v;
    }
    void finish() const {
        if (left_ != 0) fail(std::to_string(left_) + " bytes left over");
    }

    atman::unit unit() {
        atman::unit u;
        u.positions = values<index_t>();
        u.start = value<index_t>();
        u.end = value<index_t>();
        return u;
    }

    atman::perturbation_deltas row() {
        atman::perturbation_deltas r;
        const auto kind = value<std::int32_t>();
        if (kind != std::int32_t(atman::perturbation_kind::unit) &&
            kind != std::int32_t(atman::perturbation_kind::target))
            fail("unknown perturbation kind " + std::to_string(kind));
        r.kind = atman::perturbation_kind(kind);
        r.index = value<index_t>();
        r.target = values<double>();
        r.contrast = values<double>();
        return r;
    }

private:
    const char* take(std::size_t n) {
        if (n > left_) fail("truncated");
        const char* at = data_;
        data_ += n;
        left_ -= n;
        return at;
    }
    [[noreturn]] void fail(const std::string& problem) const {
        throw atman::invalid_argument(std::string("decoding ") + what_ + ": " + problem);
    }

    const char* data_;
    std::size_t left_;
    const char* what_;
};

}  // namespace

std::vector<char> encode_request(const atman::explain_request& request) {
    writer w;
    w.text(request.prompt);
    w.values(request.prompt_tokens);
    w.text(request.target);
    w.values(request.target_tokens);
    w.value(std::uint64_t(request.target_texts.size()));
    for (const std::string& t : request.target_texts) w.text(t);
    w.value(std::uint64_t(request.units.size()));
    for (const atman::unit& u : request.units) {
        w.values(u.positions);
        w.value(u.start);
        w.value(u.end);
    }
    w.text(request.contrast);
    w.values(request.contrast_tokens);
    return w.take();
}

atman::explain_request decode_request(const char* data, std::size_t size) {
    reader r(data, size, "an explain request");
    atman::explain_request request;
    request.prompt = r.text();
    request.prompt_tokens = r.values<std::int32_t>();
    request.target = r.text();
    request.target_tokens = r.values<std::int32_t>();
    request.target_texts = r.each(&reader::text);
    request.units = r.each(&reader::unit);
    request.contrast = r.text();
    request.contrast_tokens = r.values<std::int32_t>();
    r.finish();
    return request;
}

std::vector<char> encode_deltas(const atman::raw_deltas& deltas) {
    writer w;
    w.values(deltas.base_ce);
    w.values(deltas.contrast_base_ce);
    w.value(std::uint64_t(deltas.rows.size()));
    for (const atman::perturbation_deltas& row : deltas.rows) {
        w.value(std::int32_t(row.kind));
        w.value(row.index);
        w.values(row.target);
        w.values(row.contrast);
    }
    w.value(deltas.stats.passes);
    w.value(deltas.stats.token_forwards);
    w.value(deltas.stats.token_forwards_naive);
    w.value(deltas.stats.seconds);
    return w.take();
}

atman::raw_deltas decode_deltas(const char* data, std::size_t size) {
    reader r(data, size, "explanation deltas");
    atman::raw_deltas deltas;
    deltas.base_ce = r.values<double>();
    deltas.contrast_base_ce = r.values<double>();
    deltas.rows = r.each(&reader::row);
    deltas.stats.passes = r.value<index_t>();
    deltas.stats.token_forwards = r.value<index_t>();
    deltas.stats.token_forwards_naive = r.value<index_t>();
    deltas.stats.seconds = r.value<double>();
    r.finish();
    return deltas;
}

}  // namespace atman::engine
