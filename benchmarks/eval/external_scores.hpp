#pragma once
// Relevance computed outside atman-eval (docs/quality.md, "External
// methods"): e.g. gradient methods in PyTorch (benchmarks/atman-eval-gradients.py)
// score the units atman-eval wrote with --write-inputs, and atman-eval reads
// the scores back with --scores, so every metric and the deletion passes are
// the same code for them as for AtMan. The file (atman.eval-scores/1):
//
//   {"schema": "atman.eval-scores/1", "model": "<GGUF file name>",
//    "methods": {"<name>": {"questions": {"<line>": {"relevance": [..], "seconds": s,
//                                                    "cpu_seconds": c}, ...},
//                           "notes": {...}}, ...}}
//
// "<line>" is the question's line number in the data file (0-based, as in
// --write-inputs); "relevance" has one finite number per unit; "notes" (any
// JSON, optional) is copied to the method's output.

#include <atman/config.hpp>
#include <atman/error.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace atman::eval {

struct external_question_scores {
    std::vector<double> relevance;
    double seconds = 0, cpu_seconds = 0;
};

struct external_method {
    std::string name;
    std::map<index_t, external_question_scores> questions;  // by line number
    nlohmann::ordered_json notes;
};

struct external_scores {
    std::string model;  // the GGUF file name the scores were computed with
    std::vector<external_method> methods;  // in the file's order

    // The scores of method m for the question on `line` with n_units units;
    // throws invalid_argument when the file has none or a different count.
    const external_question_scores& at(const external_method& m, index_t line, std::size_t n_units,
                                       const std::string& path) const {
        const auto found = m.questions.find(line);
        if (found == m.questions.end())
            throw atman::invalid_argument(path + ": method \"" + m.name + "\" has no scores for question " +
                                          std::to_string(line));
        if (found->second.relevance.size() != n_units)
            throw atman::invalid_argument(path + ": method \"" + m.name + "\", question " + std::to_string(line) +
                                          ": " + std::to_string(found->second.relevance.size()) +
                                          " relevance values for " + std::to_string(n_units) +
                                          " units (were the scores computed from other inputs?)");
        return found->second;
    }
};

namespace detail {

inline const nlohmann::ordered_json& member(const nlohmann::ordered_json& object, const char* key,
                                            nlohmann::ordered_json::value_t type,
                                    const std::string& where) {
    const auto found = object.find(key);
    const bool number = type == nlohmann::ordered_json::value_t::number_float;
    if (found == object.end() || (number ? !found->is_number() : found->type() != type))
        throw atman::invalid_argument(where + ": missing or mistyped \"" + key + "\"");
    return *found;
}

inline index_t line_number(const std::string& key, const std::string& where) {
    std::size_t used = 0;
    long long value = -1;
    try {
        value = std::stoll(key, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used != key.size() || value < 0 || key.empty() || key[0] == '+')
        throw atman::invalid_argument(where + ": question key \"" + key + "\" is not a line number");
    return index_t(value);
}

inline external_question_scores question_scores(const nlohmann::ordered_json& q, const std::string& where) {
    using type = nlohmann::ordered_json::value_t;
    if (!q.is_object()) throw atman::invalid_argument(where + ": not an object");
    external_question_scores out;
    for (const nlohmann::ordered_json& x : member(q, "relevance", type::array, where)) {
        if (!x.is_number() || !std::isfinite(x.get<double>()))
            throw atman::invalid_argument(where + ": relevance holds " + x.dump() + ", not a finite number");
        out.relevance.push_back(x.get<double>());
    }
    out.seconds = member(q, "seconds", type::number_float, where).get<double>();
    out.cpu_seconds = member(q, "cpu_seconds", type::number_float, where).get<double>();
    if (!(out.seconds >= 0) || !(out.cpu_seconds >= 0))
        throw atman::invalid_argument(where + ": negative seconds");
    return out;
}

}  // namespace detail

// Reads and checks a scores file; throws invalid_argument naming the file and
// the first problem. `reserved(name)` says whether a method name is taken.
template <class Reserved>
external_scores read_external_scores(const std::string& path, Reserved reserved) {
    using type = nlohmann::ordered_json::value_t;
    std::ifstream in(path);
    if (!in) throw atman::invalid_argument(path + ": cannot read the scores file");
    nlohmann::ordered_json file;
    try {
        file = nlohmann::ordered_json::parse(in);
    } catch (const nlohmann::ordered_json::exception& e) {
        throw atman::invalid_argument(path + ": not JSON (" + e.what() + ")");
    }
    if (!file.is_object()) throw atman::invalid_argument(path + ": not a JSON object");
    const nlohmann::ordered_json& schema = detail::member(file, "schema", type::string, path);
    if (schema != "atman.eval-scores/1")
        throw atman::invalid_argument(path + ": schema " + schema.dump() + ", expected \"atman.eval-scores/1\"");
    external_scores out;
    out.model = detail::member(file, "model", type::string, path).get<std::string>();
    const nlohmann::ordered_json& methods = detail::member(file, "methods", type::object, path);
    if (methods.empty()) throw atman::invalid_argument(path + ": no methods");
    for (const auto& [name, m] : methods.items()) {
        const std::string where = path + ": method \"" + name + "\"";
        if (name.empty() || reserved(name))
            throw atman::invalid_argument(where + ": the name is empty or taken by a built-in method");
        if (!m.is_object()) throw atman::invalid_argument(where + ": not an object");
        external_method method{name, {}, m.value("notes", nlohmann::ordered_json::object())};
        for (const auto& [key, q] : detail::member(m, "questions", type::object, where).items())
            method.questions[detail::line_number(key, where)] =
                detail::question_scores(q, where + ", question " + key);
        out.methods.push_back(std::move(method));
    }
    return out;
}

}  // namespace atman::eval
