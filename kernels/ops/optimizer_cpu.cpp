// Fast SGD and Adam: one fused, vectorised pass per parameter tensor, split across threads.
#include "kernels/ops/optimizer.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <cmath>

namespace comb::kernels {

namespace {

COMB_CLONES
void sgd_range(float* param, const float* grad, float* velocity, int64_t i0, int64_t i1, float lr,
               float momentum, float wd) {
  if (momentum > 0) {
    for (int64_t i = i0; i < i1; ++i) {
      float g = grad[i] + wd * param[i];
      velocity[i] = momentum * velocity[i] + g;
      param[i] -= lr * velocity[i];
    }
  } else {
    for (int64_t i = i0; i < i1; ++i)
      param[i] -= lr * (grad[i] + wd * param[i]);
  }
}

COMB_CLONES
void adam_range(float* param, const float* grad, float* m, float* v, int64_t i0, int64_t i1,
                float b1, float b2, float step_size, float inv_sqrt_c2, float eps, float wd) {
  for (int64_t i = i0; i < i1; ++i) {
    float g = grad[i] + wd * param[i];
    float mi = b1 * m[i] + (1 - b1) * g;
    float vi = b2 * v[i] + (1 - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= step_size * mi / (std::sqrt(vi) * inv_sqrt_c2 + eps);
  }
}

} // namespace

void sgd_step_cpu(float* param, const float* grad, float* velocity, int64_t n,
                  const sgd_params& p) {
  detail::parallel_range(n, 32768, [&](int64_t i0, int64_t i1) {
    sgd_range(param, grad, velocity, i0, i1, p.lr, p.momentum, p.weight_decay);
  });
}

void adam_step_cpu(float* param, const float* grad, float* m, float* v, int64_t n, int64_t step,
                   const adam_params& p) {
  double c1 = 1.0 - std::pow(static_cast<double>(p.beta1), static_cast<double>(step));
  double c2 = 1.0 - std::pow(static_cast<double>(p.beta2), static_cast<double>(step));
  auto step_size = static_cast<float>(p.lr / c1);
  auto inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(c2));
  detail::parallel_range(n, 32768, [&](int64_t i0, int64_t i1) {
    adam_range(param, grad, m, v, i0, i1, p.beta1, p.beta2, step_size, inv_sqrt_c2, p.eps,
               p.weight_decay);
  });
}

} // namespace comb::kernels
