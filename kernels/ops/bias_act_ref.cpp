// Naive bias + activation and its gradient (tests only).
#include "kernels/ops/bias_act.hpp"

#include <algorithm>

namespace comb::kernels {

namespace {

float act(float v, activation a) {
  switch (a) {
  case activation::relu:
    return v < 0 ? 0.0f : v; // NaN stays NaN, as in PyTorch
  case activation::relu6:
    return std::min(std::max(v, 0.0f), 6.0f);
  default:
    return v;
  }
}

float act_grad(float y, activation a) {
  switch (a) {
  case activation::relu:
    return y > 0 ? 1.0f : 0.0f;
  case activation::relu6:
    return y > 0 && y < 6 ? 1.0f : 0.0f;
  default:
    return 1.0f;
  }
}

} // namespace

void bias_act_ref(const float* x, int64_t rows, int64_t c, const float* bias, activation a,
                  float* y) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j)
      y[r * c + j] = act(x[r * c + j] + (bias ? bias[j] : 0.0f), a);
}

void bias_act_backward_ref(const float* y, const float* dy, int64_t rows, int64_t c, activation a,
                           float* dx, float* dbias) {
  if (dbias)
    for (int64_t j = 0; j < c; ++j)
      dbias[j] = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j) {
      float g = dy[r * c + j] * act_grad(y[r * c + j], a);
      dx[r * c + j] = g;
      if (dbias)
        dbias[j] += g;
    }
}

} // namespace comb::kernels
