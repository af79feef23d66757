// Naive residual add and sigmoid (tests only).
#include "kernels/ops/elementwise.hpp"

#include <cmath>

namespace comb::kernels {

void add_ref(const float* a, const float* b, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = a[i] + b[i];
}

void sigmoid_ref(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(x[i]))));
}

void sigmoid_backward_ref(const float* y, const float* dy, int64_t n, float* dx) {
  for (int64_t i = 0; i < n; ++i)
    dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

} // namespace comb::kernels
