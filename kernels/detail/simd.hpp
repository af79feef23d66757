// comb::kernels::detail SIMD helpers: COMB_CLONES compiles a hot loop for AVX-512, AVX2 and
// baseline x86-64 and picks one at load time (GCC target_clones / ifunc), so the binary
// runs on any x86-64 and uses AVX-512 where the CPU has it. Elsewhere it expands to nothing.
// Also a thread-local scratch buffer for the CPU ops. Thread-safe (scratch is per thread).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define COMB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define COMB_CLONES
#endif

namespace comb::kernels::detail {

/// A 64-byte aligned float buffer owned by the calling thread, grown on demand; slot picks
/// one of a few independent buffers. Contents are unspecified on return.
float* scratch(size_t floats, int slot = 0);

} // namespace comb::kernels::detail
