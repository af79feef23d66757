// Batch-norm folding for the CPU backend: per-channel scales computed once, then one pass
// over the weights (it runs once per model load, so one thread suffices).
#include "kernels/ops/batch_norm_fold.hpp"

#include <cmath>
#include <vector>

namespace comb::kernels {

void batch_norm_fold_cpu(float* w, int64_t numel, float* bias, int64_t c, const float* gamma,
                         const float* beta, const float* mean, const float* var, float eps) {
  std::vector<float> scale(static_cast<size_t>(c));
  for (int64_t o = 0; o < c; ++o)
    scale[static_cast<size_t>(o)] = gamma[o] / std::sqrt(var[o] + eps);
  for (int64_t i = 0; i < numel; i += c)
    for (int64_t o = 0; o < c; ++o)
      w[i + o] *= scale[static_cast<size_t>(o)];
  for (int64_t o = 0; o < c; ++o)
    bias[o] = (bias[o] - mean[o]) * scale[static_cast<size_t>(o)] + beta[o];
}

} // namespace comb::kernels
