#pragma once
// Locale-independent number text for reports.

#include <limits>
#include <locale>
#include <sstream>
#include <string>

namespace atman::detail {

// value with `significant_digits` significant digits, '.' as decimal point
// whatever the global locale, e.g. 0.1234 -> "0.123" for 3 digits.
inline std::string format_significant(double value, int significant_digits) {
    std::ostringstream out;
    out.imbue(std::locale::classic());
    out.precision(significant_digits);
    out << value;
    return out.str();
}

// The shortest text (up to max_digits10 digits) that reads back as exactly value.
inline std::string format_round_trip(double value) {
    constexpr int max_digits = std::numeric_limits<double>::max_digits10;
    for (int digits = std::numeric_limits<double>::digits10; digits < max_digits; ++digits) {
        std::string text = format_significant(value, digits);
        std::istringstream in(text);
        in.imbue(std::locale::classic());
        double back = 0;
        if (in >> back && back == value) return text;
    }
    return format_significant(value, max_digits);
}

}  // namespace atman::detail
