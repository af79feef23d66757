// comb::kernels::detail::first_lanes: the AVX2 lane mask shared by the hand-written AVX2
// kernels (conv1d tiles, the narrow dense head, depthwise rows) for the partial vector at the
// end of a row: _mm256_maskload_ps / _mm256_maskstore_ps touch only the lanes it sets.
// Include it after <immintrin.h> (files that silence GCC 12's warnings inside the AVX-512
// headers do so before including those).
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__)
#  include <immintrin.h>

namespace comb::kernels::detail {

/// The first n of 8 float lanes (n clamped to 0..8), as a maskload/maskstore mask.
__attribute__((target("avx2"), always_inline)) inline __m256i first_lanes(int64_t n) {
  const int left = static_cast<int>(std::clamp<int64_t>(n, 0, 8));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

} // namespace comb::kernels::detail
#endif
