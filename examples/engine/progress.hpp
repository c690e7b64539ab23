#pragma once
// A progress line on stderr for long work: done/total, rate and ETA. Shown
// only on a terminal, and only once the work has taken more than a second.

#include <chrono>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace atman::engine {

class progress_bar {
public:
    progress_bar(std::string what, bool enabled)
        : what_(std::move(what)), enabled_(enabled && isatty(fileno(stderr))) {}
    progress_bar(const progress_bar&) = delete;
    progress_bar& operator=(const progress_bar&) = delete;
    ~progress_bar() { finish(); }

    void update(long long done, long long total) {
        if (!enabled_) return;
        const double elapsed = seconds();
        if (elapsed < 1.0 && done < total) return;
        const double rate = elapsed > 0 ? done / elapsed : 0;
        const double eta = rate > 0 ? (total - done) / rate : 0;
        constexpr int width = 30;
        const int filled = total > 0 ? int(width * done / total) : width;
        std::fprintf(stderr, "\r[%.*s%*s] %lld/%lld %s  %.1f/s  ETA %.0fs ", filled,
                     "##############################", width - filled, "", done, total,
                     what_.c_str(), rate, eta);
        std::fflush(stderr);
        shown_ = true;
    }

    void finish() {
        if (shown_) std::fputc('\n', stderr);
        shown_ = false;
    }

private:
    double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
    std::string what_;
    bool enabled_;
    bool shown_ = false;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace atman::engine
