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
void bias_act_backward_ref(const float* y, const float* dy, int64_t rows, int64_t c,
                           activation a, float* dx, float* dbias);
void bias_act_backward_cpu(const float* y, const float* dy, int64_t rows, int64_t c,
                           activation a, float* dx, float* dbias);

} // namespace comb::kernels
