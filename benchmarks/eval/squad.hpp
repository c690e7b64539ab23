#pragma once
// SQuAD-style JSON Lines: one question per line with `id`, `context`,
// `question` and `answers` (each `text` and `answer_start`, the latter in
// Unicode code points of the context); other members are ignored.

#include <atman/config.hpp>
#include <atman/error.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

namespace atman::eval {

struct squad_answer {
    std::string text;
    index_t start_code_point = 0;
};

struct squad_question {
    std::string id, context, question;
    std::vector<squad_answer> answers;
};

// One line; throws invalid_argument naming `where` and the problem when the
// line is not JSON or lacks a member of the right type.
inline squad_question parse_squad_line(const std::string& line, const std::string& where) {
    try {
        const nlohmann::json json = nlohmann::json::parse(line);
        squad_question q;
        q.id = json.at("id").get<std::string>();
        q.context = json.at("context").get<std::string>();
        q.question = json.at("question").get<std::string>();
        for (const nlohmann::json& a : json.at("answers"))
            q.answers.push_back({a.at("text").get<std::string>(), a.at("answer_start").get<index_t>()});
        return q;
    } catch (const nlohmann::json::exception& e) {
        throw atman::invalid_argument(where + ": " + e.what());
    }
}

// Lines [offset, offset + limit) of a JSON Lines file (limit < 0: to the end),
// with their line numbers (0-based, empty lines not counted). Throws
// invalid_argument when the file cannot be read or a line cannot be parsed.
struct numbered_question {
    index_t line = 0;
    squad_question question;
};

inline std::vector<numbered_question> read_squad(const std::string& path, index_t offset,
                                                 index_t limit) {
    std::ifstream in(path);
    atman::detail::require(bool(in), "cannot read the data file " + path);
    std::vector<numbered_question> questions;
    index_t number = 0;
    for (std::string line; std::getline(in, line);) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        if (limit >= 0 && number >= offset + limit) break;
        if (number >= offset)
            questions.push_back({number, parse_squad_line(line, path + ": question " + std::to_string(number))});
        ++number;
    }
    return questions;
}

}  // namespace atman::eval
