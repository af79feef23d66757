// Fast embedding lookup (row copies across threads) and its gradient (scatter-add,
// threads split the embedding columns so no two threads touch one float).
#include "kernels/ops/embedding.hpp"

#include "kernels/detail/cpu_pool.hpp"

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

void embedding_backward_cpu(const int32_t* tokens, int64_t n, const float* d_out, int64_t e,
                            int64_t vocab, float* d_table) {
  std::memset(d_table, 0, static_cast<size_t>(vocab * e) * sizeof(float));
  // Split columns in blocks of 16 so each thread owns whole cache lines of every row.
  int64_t blocks = (e + 15) / 16;
  detail::parallel_range(blocks, 1, [&](int64_t b0, int64_t b1) {
    int64_t c0 = b0 * 16, c1 = std::min(e, b1 * 16);
    for (int64_t i = 0; i < n; ++i) {
      float* dst = d_table + static_cast<int64_t>(tokens[i]) * e;
      const float* src = d_out + i * e;
      for (int64_t c = c0; c < c1; ++c)
        dst[c] += src[c];
    }
  });
}

} // namespace comb::kernels
