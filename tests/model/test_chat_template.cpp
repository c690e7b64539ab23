// The chat template: the default model's ChatML prompts against the Jinja
// rendering of its own tokenizer.chat_template (tests/fixtures/tokenizer_chat.json,
// written by make_tokenizer_fixtures.py), and the recogniser on template texts.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/chat_template.hpp"
#include "engine/gguf.hpp"
#include "engine/tokenizer.hpp"
#include "support/default_model.hpp"

using atman::engine::chat_template;
using atman::engine::gguf_file;
using atman::engine::tokenizer;
using json = nlohmann::json;

namespace {

const gguf_file& smollm() {
    static const gguf_file file = gguf_file::open(atman_test::model_path());
    return file;
}

json chat_fixture() {
    const std::string path = std::string(ATMAN_FIXTURES_DIR) + "/tokenizer_chat.json";
    std::ifstream in(path);
    if (!in) FAIL("cannot read " << path);
    return json::parse(in);
}

}  // namespace

TEST_CASE("ChatML prompts match the Jinja rendering of the model's template byte for byte", "[chat][model]") {
    const chat_template chat = chat_template::from_gguf(smollm());
    const tokenizer tok(smollm());
    CHECK(chat.family() == "chatml");
    CHECK(chat.end_of_turn() == "<|im_end|>");
    CHECK(chat.default_system() == "You are a helpful AI assistant named SmolLM, trained by Hugging Face");

    const json expected = chat_fixture();
    CHECK(expected["template"] == smollm().get_string("tokenizer.chat_template"));
    REQUIRE(expected["cases"].size() >= 4);
    for (const json& c : expected["cases"]) {
        const std::string user = c["user"], system = c["system"];
        INFO("user '" << user << "', system '" << system << "'");
        const auto prompt = chat.render(user, system);
        CHECK(prompt.text == c["prompt"].get<std::string>());
        CHECK(tok.encode_ids(prompt.text, true) == c["ids"].get<std::vector<std::int32_t>>());
        REQUIRE(prompt.user_ranges.size() == 1);
        const auto [start, end] = prompt.user_ranges[0];
        CHECK(prompt.text.substr(static_cast<std::size_t>(start), static_cast<std::size_t>(end - start)) == user);
        // The user text sits right after its turn header.
        const std::string header = "<|im_start|>user\n";
        REQUIRE(static_cast<std::size_t>(start) >= header.size());
        CHECK(prompt.text.compare(static_cast<std::size_t>(start) - header.size(), header.size(), header) == 0);
    }
}

TEST_CASE("rendering without the generation prompt ends with the user turn", "[chat][model]") {
    const chat_template chat = chat_template::from_gguf(smollm());
    const auto prompt = chat.render("Hi", "Be brief.", false);
    CHECK(prompt.text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
    REQUIRE(prompt.user_ranges.size() == 1);
    CHECK(prompt.user_ranges[0] == std::make_pair(atman::index_t{56}, atman::index_t{58}));
}

TEST_CASE("the recogniser knows ChatML, Llama-3 and Zephyr templates", "[chat]") {
    SECTION("ChatML without a default system message") {
        const auto chat = chat_template::from_source(
            "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}");
        CHECK(chat.family() == "chatml");
        CHECK(chat.default_system().empty());
        CHECK(chat.render("Q").text == "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n");
    }
    SECTION("ChatML with an escaped newline before the default system message") {
        const auto chat = chat_template::from_source(
            "{{ '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}{{ '<|im_start|>' }}");
        CHECK(chat.default_system() == "You are Qwen.");
    }
    SECTION("Llama-3") {
        const auto chat = chat_template::from_source(
            "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + "
            "m['content'] | trim + '<|eot_id|>' }}{% endfor %}");
        CHECK(chat.family() == "llama3");
        CHECK(chat.end_of_turn() == "<|eot_id|>");
        const auto prompt = chat.render("Q", "S");
        CHECK(prompt.text ==
              "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
        CHECK(prompt.user_ranges[0].first == static_cast<atman::index_t>(prompt.text.find("Q")));
    }
    SECTION("Zephyr ends turns with the EOS token") {
        const auto chat = chat_template::from_source(
            "{% for m in messages %}{% if m['role'] == 'user' %}{{ '<|user|>\\n' + m['content'] + eos_token }}"
            "{% endif %}{% endfor %}{{ '<|assistant|>' }}",
            "</s>");
        CHECK(chat.family() == "zephyr");
        CHECK(chat.render("Q").text == "<|user|>\nQ</s>\n<|assistant|>\n");
    }
}

TEST_CASE("an unknown or missing chat template is refused with a hint to --raw", "[chat]") {
    CHECK_THROWS_AS(chat_template::from_source("[INST] {{ messages[0]['content'] }} [/INST]"), atman::invalid_argument);
    CHECK_THROWS_WITH(chat_template::from_source("[INST] {{ messages[0]['content'] }} [/INST]"),
                      Catch::Contains("--raw") && Catch::Contains("unrecognised chat template"));
    CHECK_THROWS_WITH(chat_template::from_source(""), Catch::Contains("--raw"));
    CHECK_THROWS_WITH(chat_template::from_source("<|user|> {{ eos_token }} <|assistant|>"), Catch::Contains("--raw"));
}
