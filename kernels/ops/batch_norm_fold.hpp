// comb::kernels batch-norm folding: scales a convolution's weights (the output
// channel varying fastest, c of them) and shifts its bias so that conv then batch-norm is
// one convolution. In place.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

void batch_norm_fold_ref(float* w, int64_t numel, float* bias, int64_t c, const float* gamma,
                         const float* beta, const float* mean, const float* var, float eps);
void batch_norm_fold_cpu(float* w, int64_t numel, float* bias, int64_t c, const float* gamma,
                         const float* beta, const float* mean, const float* var, float eps);

} // namespace comb::kernels
