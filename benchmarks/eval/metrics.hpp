#pragma once
// The explanation-quality metrics of the AtMan paper (docs/quality.md): per
// sample, with x the relevance of each context unit and y its 0/1 label,
//
//   AP = sum(|x| * y) / sum(|x|)               precision: relevance mass on the answer
//   AR = sum((|x| / max|x|) * y) / sum(y)      recall: how fully the answer units light up
//
// and over samples the mean and the interquartile mean (the mean of the samples
// whose value lies between the 25th and 75th percentile, both inclusive; see
// interquartile_mean for how the percentiles are taken).
//
// A relevance vector that is all zero says nothing about the units; it is
// scored as the uniform relevance it equals up to scale (AP = the share of
// positive units, AR = 1).

#include <atman/config.hpp>
#include <atman/error.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace atman::eval {

namespace detail {

inline void require_sample(const std::vector<double>& relevance, const std::vector<int>& labels,
                           const char* metric) {
    atman::detail::require(!relevance.empty(), std::string(metric) + ": no units");
    atman::detail::require(relevance.size() == labels.size(),
                           std::string(metric) + ": " + std::to_string(relevance.size()) +
                               " relevance values for " + std::to_string(labels.size()) + " labels");
    bool any_positive = false;
    for (std::size_t i = 0; i < relevance.size(); ++i) {
        atman::detail::require(std::isfinite(relevance[i]),
                               std::string(metric) + ": relevance of unit " + std::to_string(i) +
                                   " is not finite");
        atman::detail::require(labels[i] == 0 || labels[i] == 1,
                               std::string(metric) + ": label of unit " + std::to_string(i) +
                                   " is " + std::to_string(labels[i]) + ", not 0 or 1");
        any_positive = any_positive || labels[i] == 1;
    }
    atman::detail::require(any_positive, std::string(metric) + ": no unit is labelled positive");
}

// |x| / max|x| per unit; all 1 when every x is 0 (uniform relevance).
inline std::vector<double> scaled_magnitudes(const std::vector<double>& relevance) {
    double top = 0;
    for (double x : relevance) top = std::max(top, std::abs(x));
    std::vector<double> scaled(relevance.size(), 1.0);
    if (top > 0)
        for (std::size_t i = 0; i < relevance.size(); ++i) scaled[i] = std::abs(relevance[i]) / top;
    return scaled;
}

}  // namespace detail

// AP of one sample. Throws invalid_argument for empty or mismatched inputs, a
// non-finite relevance, a label other than 0/1, or no positive label.
inline double average_precision(const std::vector<double>& relevance,
                                const std::vector<int>& labels) {
    detail::require_sample(relevance, labels, "average_precision");
    // Scaling by max|x| leaves the ratio unchanged and handles all-zero relevance.
    const std::vector<double> scaled = detail::scaled_magnitudes(relevance);
    double on_answer = 0, total = 0;
    for (std::size_t i = 0; i < scaled.size(); ++i) {
        on_answer += scaled[i] * labels[i];
        total += scaled[i];
    }
    return on_answer / total;
}

// AR of one sample; throws like average_precision.
inline double average_recall(const std::vector<double>& relevance, const std::vector<int>& labels) {
    detail::require_sample(relevance, labels, "average_recall");
    const std::vector<double> scaled = detail::scaled_magnitudes(relevance);
    double on_answer = 0, positives = 0;
    for (std::size_t i = 0; i < scaled.size(); ++i) {
        on_answer += scaled[i] * labels[i];
        positives += labels[i];
    }
    return on_answer / positives;
}

inline double mean(const std::vector<double>& values) {
    atman::detail::require(!values.empty(), "mean: no values");
    double sum = 0;
    for (double v : values) sum += v;
    return sum / double(values.size());
}

// The mean of the values v with q25 <= v <= q75, where, with the n values
// sorted as v_0 <= ... <= v_{n-1}, q25 = v_floor((n-1)/4) and
// q75 = v_ceil(3(n-1)/4) (numpy.percentile with method "lower" for the 25th
// and "higher" for the 75th percentile). Rounding outwards keeps at least one
// value for every n (linear interpolation would keep none of two distinct
// values); ties with q25 or q75 are all kept.
inline double interquartile_mean(std::vector<double> values) {
    atman::detail::require(!values.empty(), "interquartile_mean: no values");
    std::sort(values.begin(), values.end());
    const double last = double(values.size() - 1);
    const double q25 = values[std::size_t(std::floor(last * 0.25))];
    const double q75 = values[std::size_t(std::ceil(last * 0.75))];
    std::vector<double> inside;
    for (double v : values)
        if (q25 <= v && v <= q75) inside.push_back(v);
    return mean(inside);
}

}  // namespace atman::eval
