#pragma once
// Eigen, included by the kernels. GCC 12 reports its own AVX-512 intrinsics
// (_mm512_undefined_*, GCC bug 105593) as "(may be) used uninitialized" wherever
// Eigen's GEMM packing inlines them under -march=native; the warnings are
// silenced for Eigen's code only, so -Werror builds of atman's users stay clean.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
