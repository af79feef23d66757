// comb::kernels::detail SIMD helpers: COMB_CLONES compiles a hot loop for AVX-512, AVX2 and
// baseline x86-64 and picks one at load time (GCC target_clones / ifunc), so the binary
// runs on any x86-64 and uses AVX-512 where the CPU has it. Elsewhere it expands to nothing.
// Includes scratch.hpp, which the same loops use for their buffers.
#pragma once

#include "kernels/detail/scratch.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define COMB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define COMB_CLONES
#endif

