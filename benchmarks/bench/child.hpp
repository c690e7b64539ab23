#pragma once
// atman-bench's measuring processes: every measurement runs in a child
// process of its own that loads the model, resets its peak resident memory
// (/proc/self/clear_refs) and reports its figures and VmHWM through a pipe, so
// the peaks of a plain forward pass and of an explanation are comparable. The
// parent never runs OpenMP code: GNU libgomp does not survive fork() once its
// threads exist.

#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include "engine/gguf.hpp"
#include "engine/llama_model.hpp"
#include "engine/program.hpp"

namespace atman::bench {

namespace eng = atman::engine;
using json = nlohmann::json;

// Peak resident memory since the last reset, in bytes.
inline long long peak_rss_bytes() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
    throw std::runtime_error("VmHWM is missing from /proc/self/status");
}

inline void reset_peak_rss() {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    if (!clear.flush()) throw std::runtime_error("cannot reset the peak RSS via /proc/self/clear_refs");
}

// Runs measure(model) in a child with its own copy of the model loaded; returns
// its JSON with "peak_rss" added (bytes since the model was loaded and the peak reset).
inline json in_child(const std::string& model_path, int threads,
                     const std::function<json(const eng::llama_model&)>& measure) {
    int channel[2];
    if (pipe(channel) != 0) throw std::runtime_error("pipe failed");
    std::cout.flush();
    std::cerr.flush();
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        close(channel[0]);
        json result;
        try {
            eng::apply_threads(threads);
            const eng::gguf_file file = eng::gguf_file::open(model_path);
            const eng::llama_model model = eng::llama_model::load(file);
            reset_peak_rss();
            result = measure(model);
            result["peak_rss"] = peak_rss_bytes();
        } catch (const std::exception& e) {
            result = {{"error", e.what()}};
        }
        const std::string text = result.dump();
        for (std::size_t done = 0; done < text.size();) {
            const ssize_t n = write(channel[1], text.data() + done, text.size() - done);
            if (n <= 0) break;
            done += std::size_t(n);
        }
        close(channel[1]);
        _exit(0);
    }
    close(channel[1]);
    std::string text;
    char buffer[65536];
    for (ssize_t n; (n = read(channel[0], buffer, sizeof buffer)) > 0;) text.append(buffer, std::size_t(n));
    close(channel[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || text.empty()) throw std::runtime_error("a measuring process died");
    json result = json::parse(text);
    if (result.contains("error")) throw std::runtime_error(result["error"].get<std::string>());
    return result;
}

}  // namespace atman::bench
