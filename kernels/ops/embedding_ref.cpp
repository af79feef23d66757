// Naive embedding lookup and its scatter-add gradient (tests only).
#include "kernels/ops/embedding.hpp"

namespace comb::kernels {

void embedding_ref(const int32_t* tokens, int64_t n, const float* table, int64_t e, float* out) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < e; ++j)
      out[i * e + j] = table[tokens[i] * e + j];
}

void embedding_backward_ref(const int32_t* tokens, int64_t n, const float* d_out, int64_t e,
                            int64_t vocab, float* d_table) {
  for (int64_t i = 0; i < vocab * e; ++i)
    d_table[i] = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < e; ++j)
      d_table[tokens[i] * e + j] += d_out[i * e + j];
}

} // namespace comb::kernels
