// Naive max over time and its gradient (tests only).
#include "kernels/ops/max_over_time.hpp"

namespace comb::kernels {

void max_over_time_ref(const float* x, int64_t b, int64_t t, int64_t c, int64_t valid, float* y,
                       int32_t* argmax) {
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < c; ++j) {
      int64_t best = 0;
      for (int64_t s = 1; s < valid; ++s)
        if (x[(i * t + s) * c + j] > x[(i * t + best) * c + j])
          best = s;
      y[i * c + j] = x[(i * t + best) * c + j];
      argmax[i * c + j] = static_cast<int32_t>(best);
    }
}

void max_over_time_backward_ref(const float* dy, const int32_t* argmax, int64_t b, int64_t t,
                                int64_t c, float* dx) {
  for (int64_t i = 0; i < b * t * c; ++i)
    dx[i] = 0;
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < c; ++j)
      dx[(i * t + argmax[i * c + j]) * c + j] += dy[i * c + j];
}

} // namespace comb::kernels
