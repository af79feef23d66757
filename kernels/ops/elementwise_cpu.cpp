// Fast residual add and sigmoid: split across threads, vectorised clones.
#include "kernels/ops/elementwise.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <cmath>

namespace comb::kernels {

namespace {

COMB_CLONES
void add_range(const float* a, const float* b, int64_t i0, int64_t i1, float* y) {
  for (int64_t i = i0; i < i1; ++i)
    y[i] = a[i] + b[i];
}

COMB_CLONES
void sigmoid_range(const float* x, int64_t i0, int64_t i1, float* y) {
  for (int64_t i = i0; i < i1; ++i)
    y[i] = 1.0f / (1.0f + std::exp(-x[i]));
}

COMB_CLONES
void sigmoid_grad_range(const float* y, const float* dy, int64_t i0, int64_t i1, float* dx) {
  for (int64_t i = i0; i < i1; ++i)
    dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

} // namespace

void add_cpu(const float* a, const float* b, int64_t n, float* y) {
  detail::parallel_range(n, 32768, [&](int64_t i0, int64_t i1) { add_range(a, b, i0, i1, y); });
}

void sigmoid_cpu(const float* x, int64_t n, float* y) {
  detail::parallel_range(n, 8192, [&](int64_t i0, int64_t i1) { sigmoid_range(x, i0, i1, y); });
}

void sigmoid_backward_cpu(const float* y, const float* dy, int64_t n, float* dx) {
  detail::parallel_range(n, 32768,
                         [&](int64_t i0, int64_t i1) { sigmoid_grad_range(y, dy, i0, i1, dx); });
}

} // namespace comb::kernels
