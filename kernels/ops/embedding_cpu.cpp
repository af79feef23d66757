// Fast embedding lookup (row copies across threads) and its gradient (scatter-add,
// threads split the embedding columns so no two threads touch one float; vectorised
// clones).
#include "kernels/ops/embedding.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <algorithm>
#include <cstring>

namespace comb::kernels {

void embedding_cpu(const int32_t* tokens, int64_t n, const float* table, int64_t e, float* out) {
  detail::parallel_range(n, 1024, [&](int64_t b, int64_t end) {
    for (int64_t i = b; i < end; ++i)
      std::memcpy(out + i * e, table + static_cast<int64_t>(tokens[i]) * e,
                  static_cast<size_t>(e) * sizeof(float));
  });
}

namespace {

/// d_table[tokens[i], c0:c1] += d_out[i, c0:c1] for every i, in order.
COMB_CLONES
void scatter_add_columns(const int32_t* tokens, int64_t n, const float* d_out, int64_t e,
                         int64_t c0, int64_t c1, float* d_table) {
  for (int64_t i = 0; i < n; ++i) {
    float* dst = d_table + static_cast<int64_t>(tokens[i]) * e;
    const float* src = d_out + i * e;
    for (int64_t c = c0; c < c1; ++c)
      dst[c] += src[c];
  }
}

} // namespace

void embedding_backward_cpu(const int32_t* tokens, int64_t n, const float* d_out, int64_t e,
                            int64_t vocab, float* d_table) {
  std::memset(d_table, 0, static_cast<size_t>(vocab * e) * sizeof(float));
  // Split columns in blocks of 32 (two cache lines) so each thread owns whole cache lines
  // of every row and each pass over the tokens does a row's worth of work.
  int64_t blocks = (e + 31) / 32;
  detail::parallel_range(blocks, 1, [&](int64_t b0, int64_t b1) {
    scatter_add_columns(tokens, n, d_out, e, b0 * 32, std::min(e, b1 * 32), d_table);
  });
}

} // namespace comb::kernels
