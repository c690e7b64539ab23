#include <atman/units.hpp>
#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace {

using atman::index_t;
using positions = std::vector<index_t>;

// A prompt made of the given token texts, concatenated; a text starting with
// '<' and ending with '>' is a special token.
struct tokenized {
    std::string text;
    std::vector<atman::token_offsets> tokens;
};

tokenized tokenize(const std::vector<std::string>& pieces) {
    tokenized t;
    for (const std::string& piece : pieces) {
        const bool special = piece.size() > 1 && piece.front() == '<' && piece.back() == '>';
        t.tokens.push_back(
            {index_t(t.text.size()), index_t(t.text.size() + piece.size()), special});
        t.text += piece;
    }
    return t;
}

std::vector<atman::unit> units_of(const tokenized& t, atman::granularity by,
                                  atman::unit_options options = {}) {
    options.by = by;
    return atman::make_units(t.text, t.tokens, options);
}

std::vector<positions> positions_of(const std::vector<atman::unit>& units) {
    std::vector<positions> out;
    for (const atman::unit& u : units) out.push_back(u.positions);
    return out;
}

std::vector<std::string> texts_of(const tokenized& t, const std::vector<atman::unit>& units) {
    std::vector<std::string> out;
    for (const atman::unit& u : units) out.push_back(t.text.substr(u.start, u.end - u.start));
    return out;
}

}  // namespace

TEST_CASE("word units attach leading-space tokens and punctuation to their word") {
    const tokenized t = tokenize({"The", " capital", " of", " France", " is", " Paris", "."});
    const auto units = units_of(t, atman::granularity::word);
    CHECK(positions_of(units) == std::vector<positions>{{0}, {1}, {2}, {3}, {4}, {5, 6}});
    CHECK(texts_of(t, units) ==
          std::vector<std::string>{"The", "capital", "of", "France", "is", "Paris."});
}

TEST_CASE("white-space tokens join the next word, or the previous one at the end") {
    const tokenized t = tokenize({"Hello", " ", "\t", "world", "\n", "\n"});
    const auto units = units_of(t, atman::granularity::word);
    CHECK(positions_of(units) == std::vector<positions>{{0}, {1, 2, 3, 4, 5}});
    CHECK(texts_of(t, units) == std::vector<std::string>{"Hello", "world"});
}

TEST_CASE("a token spanning two words joins them into one unit") {
    const tokenized t = tokenize({"New", " York is", " big"});
    const auto units = units_of(t, atman::granularity::word);
    CHECK(positions_of(units) == std::vector<positions>{{0}, {1}, {2}});
    const tokenized u = tokenize({"ab c", "d e"});
    CHECK(texts_of(u, units_of(u, atman::granularity::word)) ==
          std::vector<std::string>{"ab cd e"});
}

TEST_CASE("multi-byte UTF-8: byte-level tokens splitting a code point stay in one unit") {
    // "café naïve 東京" with é and ï cut between two byte-level tokens.
    const tokenized t =
        tokenize({"caf\xC3", "\xA9", " na", "\xC3", "\xAF", "ve", " \xE6\x9D\xB1", "\xE4\xBA\xAC"});
    const auto words = units_of(t, atman::granularity::word);
    CHECK(positions_of(words) == std::vector<positions>{{0, 1}, {2, 3, 4, 5}, {6, 7}});
    CHECK(texts_of(t, words) ==
          std::vector<std::string>{"caf\xC3\xA9", "na\xC3\xAFve", "\xE6\x9D\xB1\xE4\xBA\xAC"});

    const auto tokens = units_of(t, atman::granularity::token);
    CHECK(positions_of(tokens) == std::vector<positions>{{0, 1}, {2}, {3, 4}, {5}, {6}, {7}});
    CHECK(texts_of(t, tokens) == std::vector<std::string>{"caf\xC3\xA9", "na", "\xC3\xAF", "ve",
                                                          "\xE6\x9D\xB1", "\xE4\xBA\xAC"});
}

TEST_CASE("Unicode white space separates words") {
    // U+00A0 no-break space, U+3000 ideographic space, U+2003 em space.
    const tokenized t = tokenize({"a\xC2\xA0", "b\xE3\x80\x80", "c", "\xE2\x80\x83", "d"});
    const auto units = units_of(t, atman::granularity::word);
    CHECK(texts_of(t, units) == std::vector<std::string>{"a", "b", "c", "d"});
    CHECK(positions_of(units) == std::vector<positions>{{0}, {1}, {2}, {3, 4}});
}

TEST_CASE("token units keep white-space tokens as units of their own") {
    const tokenized t = tokenize({"Hi", " ", "there"});
    const auto units = units_of(t, atman::granularity::token);
    CHECK(positions_of(units) == std::vector<positions>{{0}, {1}, {2}});
    CHECK(texts_of(t, units) == std::vector<std::string>{"Hi", " ", "there"});
}

TEST_CASE("sentences end at . ! ? before white space, closing quotes allowed") {
    const tokenized t = tokenize({"It", " rains", ".", " Does", " it", "?", " Yes", "!", "Sure",
                                  ".", " \"", "Go", ".\"", " Then", " e", ".g", ".x", " end"});
    const auto units = units_of(t, atman::granularity::sentence);
    CHECK(texts_of(t, units) == std::vector<std::string>{"It rains.", "Does it?", "Yes!Sure.",
                                                         "\"Go.\"", "Then e.g.x end"});
    CHECK(positions_of(units) ==
          std::vector<positions>{
              {0, 1, 2}, {3, 4, 5}, {6, 7, 8, 9}, {10, 11, 12}, {13, 14, 15, 16, 17}});
}

TEST_CASE("a blank line ends a sentence and a paragraph; empty paragraphs make no unit") {
    const tokenized t = tokenize({"First", " para", ".", "\n\n", "Second", "\n", "line",
                                  "\r\n \r\n", "\n\n", "Third", " one"});
    const auto paragraphs = units_of(t, atman::granularity::paragraph);
    CHECK(texts_of(t, paragraphs) ==
          std::vector<std::string>{"First para.", "Second\nline", "Third one"});
    CHECK(positions_of(paragraphs) ==
          std::vector<positions>{{0, 1, 2}, {3, 4, 5, 6}, {7, 8, 9, 10}});
    const auto sentences = units_of(t, atman::granularity::sentence);
    CHECK(texts_of(t, sentences) ==
          std::vector<std::string>{"First para.", "Second\nline", "Third one"});
}

TEST_CASE("delimiter units end with their delimiter; delimiter-only pieces are dropped") {
    const tokenized t = tokenize({"a", ";", " b", ";", ";", " c", " d"});
    atman::unit_options options;
    options.delimiter = ";";
    const auto units = units_of(t, atman::granularity::delimiter, options);
    CHECK(texts_of(t, units) == std::vector<std::string>{"a;", "b;", "c d"});
    CHECK(positions_of(units) == std::vector<positions>{{0, 1}, {2, 3}, {4, 5, 6}});

    options.delimiter = "";
    CHECK_THROWS_AS(units_of(t, atman::granularity::delimiter, options), atman::invalid_argument);
    options.delimiter = "\xA9";
    CHECK_THROWS_AS(units_of(t, atman::granularity::delimiter, options), atman::invalid_argument);
}

TEST_CASE("special tokens never belong to a unit") {
    const tokenized t = tokenize({"<s>", "<|user|>", "\n", "Why", " not", "?", "<|end|>", "\n"});
    const auto units = units_of(t, atman::granularity::word);
    CHECK(positions_of(units) ==
          std::vector<positions>{{2, 3}, {4, 5}});  // "\n" after <|end|> has no word beside it
    CHECK(texts_of(t, units) == std::vector<std::string>{"Why", "not?"});
    for (auto by :
         {atman::granularity::token, atman::granularity::sentence, atman::granularity::paragraph}) {
        for (const atman::unit& u : units_of(t, by)) {
            for (index_t p : u.positions) CHECK((p != 0 && p != 1 && p != 6));
        }
    }
    const tokenized only_special = tokenize({"<s>", "<x>"});
    CHECK_THROWS_AS(units_of(only_special, atman::granularity::word), atman::invalid_argument);
}

TEST_CASE("the explain range limits units, given as byte or position ranges") {
    const tokenized t =
        tokenize({"Context", ":", " Rome", " is", " old", ".", " Question", ":", " why", "?"});
    atman::unit_options by_bytes;
    const index_t rome = index_t(t.text.find("Rome")), question = index_t(t.text.find(" Question"));
    by_bytes.range.bytes = {{rome, question}};
    CHECK(texts_of(t, units_of(t, atman::granularity::word, by_bytes)) ==
          std::vector<std::string>{"Rome", "is", "old."});
    CHECK(positions_of(units_of(t, atman::granularity::word, by_bytes)) ==
          std::vector<positions>{{2}, {3}, {4, 5}});

    // A range cutting a word keeps the part inside it.
    by_bytes.range.bytes = {{rome + 1, question}};
    CHECK(texts_of(t, units_of(t, atman::granularity::sentence, by_bytes)) ==
          std::vector<std::string>{"ome is old."});

    atman::unit_options by_positions;
    by_positions.range.positions = {{0, 2}, {8, 10}};
    CHECK(positions_of(units_of(t, atman::granularity::word, by_positions)) ==
          std::vector<positions>{{0, 1}, {8, 9}});
    CHECK(positions_of(units_of(t, atman::granularity::token, by_positions)) ==
          std::vector<positions>{{0}, {1}, {8}, {9}});
}

TEST_CASE("bad explain ranges are rejected") {
    const tokenized t = tokenize({"<s>", "caf\xC3\xA9", " au", " lait"});
    const auto with_range = [&](atman::explain_range range) {
        atman::unit_options options;
        options.range = std::move(range);
        return units_of(t, atman::granularity::word, options);
    };
    const index_t size = index_t(t.text.size());
    CHECK_THROWS_AS(with_range({{{4, 4}}, {}}), atman::invalid_argument);         // empty
    CHECK_THROWS_AS(with_range({{{4, size + 1}}, {}}), atman::invalid_argument);  // outside
    CHECK_THROWS_AS(with_range({{{-1, 3}}, {}}), atman::invalid_argument);
    CHECK_THROWS_AS(with_range({{{3, 7}}, {}}), atman::invalid_argument);            // splits é
    CHECK_THROWS_AS(with_range({{{3, 10}, {8, 12}}, {}}), atman::invalid_argument);  // overlap
    CHECK_THROWS_AS(with_range({{{0, 3}}, {}}), atman::invalid_argument);            // only special
    CHECK_THROWS_AS(with_range({{}, {{2, 2}}}), atman::invalid_argument);
    CHECK_THROWS_AS(with_range({{}, {{0, 5}}}), atman::invalid_argument);
    CHECK_THROWS_AS(with_range({{{3, 10}}, {{1, 2}}}), atman::invalid_argument);  // both kinds
    CHECK_NOTHROW(with_range({{{3, 10}, {10, 13}}, {}}));

    atman::unit_options options;
    auto bad_tokens = t.tokens;
    bad_tokens[2].end = size + 3;
    CHECK_THROWS_AS(atman::make_units(t.text, bad_tokens, options), atman::invalid_argument);
}

TEST_CASE("span units follow the given spans and reject bad ones") {
    const tokenized t = tokenize({"<s>", "one", " two", " three", " four"});
    const auto at = [&](const char* word) { return index_t(t.text.find(word)); };
    atman::unit_options options;
    options.spans = {{at("three"), at(" four")}, {at("one"), at(" three")}};
    const auto units = units_of(t, atman::granularity::spans, options);
    CHECK(positions_of(units) == std::vector<positions>{{3}, {1, 2}});
    CHECK(texts_of(t, units) == std::vector<std::string>{"three", "one two"});

    const auto rejects = [&](std::vector<atman::byte_range> spans) {
        atman::unit_options bad;
        bad.spans = std::move(spans);
        CHECK_THROWS_AS(units_of(t, atman::granularity::spans, bad), atman::invalid_argument);
    };
    rejects({{at("one"), at(" three")}, {at("two"), at(" four")}});     // overlapping
    rejects({{at("one"), index_t(t.text.size()) + 1}});                 // outside
    rejects({{at("one"), at("one")}});                                  // empty
    rejects({{at("one"), at("one") + 1}, {at("one") + 2, at("two")}});  // share token "one"
    rejects({{0, 3}});                                                  // only the special token
}

TEST_CASE("grid units pool patches into cells, row-major, edge cells smaller") {
    // Two text tokens, then a 3 x 5 image of empty-text patch tokens, then text.
    tokenized t = tokenize({"Look", ":"});
    const index_t rows = 3, cols = 5, first = 2;
    for (index_t p = 0; p < rows * cols; ++p)
        t.tokens.push_back({index_t(t.text.size()), index_t(t.text.size()), false});
    t.tokens.push_back({index_t(t.text.size()), index_t(t.text.size()) + 4, false});
    t.text += "what";
    t.tokens[first + 7].special = true;  // a patch the range excludes

    atman::unit_options options;
    options.grid = {first, rows, cols, 2, 2};
    const auto units = units_of(t, atman::granularity::grid, options);

    // Independent expectation: patch (r, c) goes to cell (r / 2) * 3 + c / 2.
    std::vector<positions> expected(6);
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c)
            if (first + r * cols + c != first + 7)
                expected[(r / 2) * 3 + c / 2].push_back(first + r * cols + c);
    for (auto& cell : expected) std::sort(cell.begin(), cell.end());
    CHECK(positions_of(units) == expected);
    CHECK(units[0].start == 5);
    CHECK(units[0].end == 5);

    options.grid = {first, rows, cols + 1, 1, 1};  // past the last token
    CHECK_THROWS_AS(units_of(t, atman::granularity::grid, options), atman::invalid_argument);
    options.grid = {first, rows, cols, 0, 2};
    CHECK_THROWS_AS(units_of(t, atman::granularity::grid, options), atman::invalid_argument);
    options.grid = {first, rows, cols, 1, 1};
    options.range.positions = {{0, first + 3}};
    CHECK(positions_of(units_of(t, atman::granularity::grid, options)) ==
          std::vector<positions>{{2}, {3}, {4}});
}

TEST_CASE("validate_units rejects overlapping, unsorted and out-of-range units") {
    using atman::unit;
    CHECK_NOTHROW(atman::validate_units({unit{{0, 2}, 0, 1}, unit{{1}, 1, 2}}, 3, 2));
    CHECK_THROWS_AS(atman::validate_units({unit{{0, 2}, 0, 1}, unit{{2}, 1, 2}}, 3, 2),
                    atman::invalid_argument);
    CHECK_THROWS_AS(atman::validate_units({unit{{2, 1}, 0, 1}}, 3, 2), atman::invalid_argument);
    CHECK_THROWS_AS(atman::validate_units({unit{{3}, 0, 1}}, 3, 2), atman::invalid_argument);
    CHECK_THROWS_AS(atman::validate_units({unit{{}, 0, 1}}, 3, 2), atman::invalid_argument);
    CHECK_THROWS_AS(atman::validate_units({unit{{0}, 1, 3}}, 3, 2), atman::invalid_argument);
}
