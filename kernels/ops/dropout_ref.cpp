// Naive inverted dropout and its gradient (tests only).
#include "kernels/ops/dropout.hpp"

namespace comb::kernels {

void dropout_ref(const float* x, int64_t n, float p, uint64_t seed, float* y, uint8_t* mask) {
  float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) {
    bool keep = dropout_keep(seed, static_cast<uint64_t>(i), p);
    mask[i] = keep ? 1 : 0;
    y[i] = keep ? x[i] * scale : 0.0f;
  }
}

void dropout_backward_ref(const float* dy, const uint8_t* mask, int64_t n, float p, float* dx) {
  float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i)
    dx[i] = mask[i] ? dy[i] * scale : 0.0f;
}

} // namespace comb::kernels
