#pragma once
// The exception types every component of atman throws.

#include <stdexcept>
#include <string>

namespace atman {

// Base of every exception the library throws on purpose.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A caller passed a value outside its documented domain (bad factor, kappa,
// span, size mismatch, ...). The message names the argument and the value.
class invalid_argument : public error {
public:
    using error::error;
};

// An engine or model produced something the method cannot use (NaN logits,
// non-finite embeddings, wrong output size).
class numeric_error : public error {
public:
    using error::error;
};

// The caller asked the explainer to stop (see explain_options::cancel).
class cancelled : public error {
public:
    using error::error;
};

namespace detail {
inline void require(bool condition, const std::string& message) {
    if (!condition) throw invalid_argument(message);
}
}  // namespace detail

}  // namespace atman
