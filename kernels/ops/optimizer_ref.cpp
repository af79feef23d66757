// Naive SGD and Adam steps (tests only).
#include "kernels/ops/optimizer.hpp"

#include <cmath>

namespace comb::kernels {

void sgd_step_ref(float* param, const float* grad, float* velocity, int64_t n,
                  const sgd_params& p) {
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i] + p.weight_decay * param[i];
    if (p.momentum > 0) {
      velocity[i] = p.momentum * velocity[i] + g;
      g = velocity[i];
    }
    param[i] -= p.lr * g;
  }
}

void adam_step_ref(float* param, const float* grad, float* m, float* v, int64_t n, int64_t step,
                   const adam_params& p) {
  double c1 = 1.0 - std::pow(static_cast<double>(p.beta1), static_cast<double>(step));
  double c2 = 1.0 - std::pow(static_cast<double>(p.beta2), static_cast<double>(step));
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i] + p.weight_decay * param[i];
    m[i] = p.beta1 * m[i] + (1 - p.beta1) * g;
    v[i] = p.beta2 * v[i] + (1 - p.beta2) * g * g;
    double mh = m[i] / c1, vh = v[i] / c2;
    param[i] = static_cast<float>(param[i] - p.lr * mh / (std::sqrt(vh) + p.eps));
  }
}

} // namespace comb::kernels
