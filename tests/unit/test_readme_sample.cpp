// The README's integration sample (examples/00-toy-engine) compiles, runs,
// and is what the README shows.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "00-toy-engine/toy_engine.hpp"

TEST_CASE("README sample: scores are the CE rise of each suppressed word") {
    const atman::explanation e = explain_toy();
    REQUIRE(e.units.size() == 4);
    REQUIRE(e.units[1].text == "green");

    // Independent check: run the toy by hand with each word's key factor 0.1.
    const toy_engine engine;
    const std::vector<std::int32_t> tokens = {1, 2, 3, 4, 5};  // prompt + y_0 (teacher-forced)
    const std::vector<std::int32_t> targets = {5, 6};
    const atman::sequence_view s{tokens.data(), 5, 3, targets.data(), 2};
    double base[2], perturbed[2];
    engine.run(s, nullptr, atman::manipulation_mode::multiplicative, base);
    for (int k = 0; k < 4; ++k) {
        std::vector<float> factors(5, 1.0f);
        factors[k] = 0.1f;
        engine.run(s, factors.data(), atman::manipulation_mode::multiplicative, perturbed);
        CHECK(e.units[k].score == Approx(perturbed[0] + perturbed[1] - base[0] - base[1]).margin(1e-9));
    }
}

TEST_CASE("README shows the sample verbatim") {
    const auto slurp = [](const char* path) {
        std::ifstream in(path);
        REQUIRE(in);
        std::ostringstream text;
        text << in.rdbuf();
        return text.str();
    };
    const std::string readme = slurp(ATMAN_SOURCE_DIR "/README.md");
    const std::string sample = slurp(ATMAN_SOURCE_DIR "/examples/00-toy-engine/toy_engine.hpp");
    CHECK(readme.find("```cpp\n" + sample + "```") != std::string::npos);
}
