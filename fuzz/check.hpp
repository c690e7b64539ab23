#pragma once
// A property a fuzz target checks: when it fails, the condition and the line
// are printed and the process aborts, so libFuzzer saves the input.

#include <cstdio>
#include <cstdlib>

#define ATMAN_FUZZ_CHECK(condition)                                                                \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition);     \
            std::abort();                                                                          \
        }                                                                                          \
    } while (false)
