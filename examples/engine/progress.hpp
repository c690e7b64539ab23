#pragma once
// A progress line on stderr for long work: done/total, rate and ETA. Shown
// only on a terminal, and only once the work has taken more than a second.

#include <atman/scheduler.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <unistd.h>

namespace atman::engine {

// The work behind "done" perturbations of a plan, in recomputed token-rows.
// Its perturbations are sorted by first affected position, so the first ones
// recompute the most: an estimate by perturbations alone starts far too long.
// A count beyond the plan's size goes round again (the contrast target's
// sequence runs the same plan). Without a plan every perturbation weighs 1.
class progress_work {
public:
    progress_work() = default;
    explicit progress_work(const atman::plan& p) : before_(p.perturbations.size() + 1, 0.0) {
        for (std::size_t i = 0; i < p.perturbations.size(); ++i)
            before_[i + 1] = before_[i] + double(p.perturbations[i].token_rows(p.length));
    }

    double of(long long done) const {
        const long long n = static_cast<long long>(before_.size()) - 1;
        if (n <= 0) return double(done);
        return double(done / n) * before_.back() + before_[std::size_t(done % n)];
    }

private:
    std::vector<double> before_;  // before_[i]: the work of the first i perturbations
};

// Seconds left when `elapsed` seconds did `done` of `total` work, at the same pace.
inline double eta_seconds(double elapsed, double done, double total) {
    return done > 0 && total > done ? elapsed * (total - done) / done : 0.0;
}

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
        const double eta = eta_seconds(elapsed, work_.of(done), work_.of(total));
        constexpr int width = 30;
        const int filled = total > 0 ? int(width * done / total) : width;
        std::fprintf(stderr, "\r[%.*s%*s] %lld/%lld %s  %.1f/s  ETA %.0fs ", filled,
                     "##############################", width - filled, "", done, total,
                     what_.c_str(), rate, eta);
        std::fflush(stderr);
        shown_ = true;
    }

    // Estimates the time left by the token-rows of plan (progress_work).
    void weigh_by(const atman::plan& plan) { work_ = progress_work(plan); }

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
    progress_work work_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace atman::engine
