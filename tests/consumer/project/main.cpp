// Uses atman through its umbrella header: fails (non-zero exit) if the
// library does not behave as documented.
#include <atman/atman.hpp>

#include <iostream>
#include <string>

int main() {
    atman::config cfg;
    cfg.validate();
    cfg.factor = -1;
    try {
        cfg.validate();
        std::cerr << "a negative factor was accepted\n";
        return 1;
    } catch (const atman::invalid_argument&) {
    }

    atman::explanation e;
    e.prompt = "The capital of France is";
    e.target = " Paris";
    e.targets = {{3681, " Paris", 0.5}};
    e.units = {{0, "France", 15, 21, 4, 5, 1.25, {1.25}}};
    const std::string json = atman::to_json(e);
    if (json.find("\"schema\": \"atman.explanation/1\"") == std::string::npos ||
        json.find("\"score\": 1.25") == std::string::npos) {
        std::cerr << "unexpected JSON:\n" << json;
        return 1;
    }
    if (atman::to_html(e).find("France</span>") == std::string::npos) {
        std::cerr << "the HTML report lacks the unit\n";
        return 1;
    }
    std::cout << atman::to_terminal(e);
    return 0;
}
