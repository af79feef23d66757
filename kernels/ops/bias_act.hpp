// comb::kernels bias + activation: y = act(x + bias) over rows x c (bias per column,
// may be nullptr; ReLU, ReLU6 or none) fused in one pass, and its gradient from y.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

void bias_act_ref(const float* x, int64_t rows, int64_t c, const float* bias, activation a,
                  float* y);
void bias_act_cpu(const float* x, int64_t rows, int64_t c, const float* bias, activation a,
                  float* y);

/// dbias may be nullptr.
void bias_act_backward_ref(const float* y, const float* dy, int64_t rows, int64_t c, activation a,
                           float* dx, float* dbias);
void bias_act_backward_cpu(const float* y, const float* dy, int64_t rows, int64_t c, activation a,
                           float* dx, float* dbias);

/// CUDA (bias_act.cu): x[rows][cols] = clamp(x + bias[col], lo, hi) in place; bias may be
/// nullptr; NaN kept.
int bias_act_cuda(float* x, const float* bias, int64_t rows, int cols, float lo, float hi,
                  cuda_stream s);

} // namespace comb::kernels
