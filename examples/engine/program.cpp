#include "program.hpp"

#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <omp.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <iostream>

#include "output_files.hpp"

namespace atman::engine {

std::string parse_arguments(CLI::App& app, const std::vector<std::string>& args) {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 consumes from the back
    try {
        app.parse(reversed);
    } catch (const CLI::Success&) {
        return app.help();
    } catch (const CLI::ExtrasError&) {
        // CLI11's own message lists them reversed (it is given them from the back).
        const std::vector<std::string> extra = app.remaining();
        std::string listed;
        for (const std::string& a : extra) listed += " " + a;
        throw usage_error(std::string(extra.size() == 1 ? "The following argument was not expected:"
                                                        : "The following arguments were not expected:") +
                          listed + " (see --help)");
    } catch (const CLI::ParseError& e) {
        throw usage_error(std::string(e.what()) + " (see --help)");
    }
    return {};
}

int run_program(const std::string& name, const std::function<int()>& body, bool report) {
    std::signal(SIGXFSZ, SIG_IGN);
    const auto fail = [&](int code, const char* message) {
        if (report) std::cerr << name << ": " << message << std::endl;
        return code;
    };
    try {
        return body();
    } catch (const usage_error& e) {
        return fail(2, e.what());
    } catch (const std::exception& e) {
        return fail(1, e.what());
    }
}

int run_program(const std::string& name, CLI::App& app, int argc, const char* const* argv,
                const std::function<int()>& body) {
    if (app.get_name().empty()) app.name(name);  // for "Usage: name [OPTIONS]"
    return run_program(name, [&] {
        const std::string help =
            parse_arguments(app, std::vector<std::string>(argv + std::min(argc, 1), argv + argc));
        if (help.empty()) return body();
        write_stdout(help);
        return 0;
    });
}

CLI::Validator whole_number(long long least, long long most, const std::string& meaning) {
    return CLI::Validator(
        [=](std::string& value) -> std::string {
            long long n = 0;
            const char* end = value.data() + value.size();
            const auto [stop, error] = std::from_chars(value.data(), end, n);
            if (error == std::errc() && stop == end && n >= least && n <= most) return {};
            return "must be a whole number " + meaning + ", got '" + value + "'";
        },
        "");
}

void apply_threads(int threads) {
    if (threads <= 0) return;
    omp_set_num_threads(threads);
    Eigen::setNbThreads(threads);
}

}  // namespace atman::engine
