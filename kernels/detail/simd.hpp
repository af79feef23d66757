// comb::kernels::detail SIMD helpers: COMB_CLONES compiles a hot loop for AVX-512, AVX2 and
// baseline x86-64 and picks one at load time (GCC target_clones / ifunc), so the binary
// runs on any x86-64 and uses AVX-512 where the CPU has it. Elsewhere it expands to nothing.
// use_avx512_kernels() gates the hand-written intrinsics kernels. Includes scratch.hpp,
// which the same loops use for their buffers.
#pragma once

#include "kernels/detail/scratch.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#  define COMB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#  define COMB_CLONES
#endif

#include <cstdlib>

namespace comb::kernels::detail {

/// Whether the hand-written AVX-512 kernels (intrinsics, not the COMB_CLONES loops) run:
/// the CPU has AVX-512F and COMB_KERNELS_NO_AVX512 is not set in the environment (tests set
/// it to run the portable fallbacks on AVX-512 machines too). Read once.
inline bool use_avx512_kernels() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  static const bool yes = __builtin_cpu_supports("avx512f")
                          && !std::getenv("COMB_KERNELS_NO_AVX512");
  return yes;
#else
  return false;
#endif
}

/// Whether the hand-written AVX2 kernels run where the AVX-512 ones do not: the CPU has AVX2
/// and FMA and COMB_KERNELS_NO_AVX2 is not set (the _portable test runs set it, with
/// COMB_KERNELS_NO_AVX512, to check the plain C++ fallbacks; the _avx2 runs set only
/// COMB_KERNELS_NO_AVX512). Read once.
inline bool use_avx2_kernels() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                          && !std::getenv("COMB_KERNELS_NO_AVX2");
  return yes;
#else
  return false;
#endif
}

} // namespace comb::kernels::detail
