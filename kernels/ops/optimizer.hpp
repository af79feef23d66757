// comb::kernels optimiser steps: SGD (optional momentum and weight decay) and Adam
// with bias correction, updating parameters in place.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

/// velocity may be nullptr when p.momentum == 0.
void sgd_step_ref(float* param, const float* grad, float* velocity, int64_t n, const sgd_params& p);
void sgd_step_cpu(float* param, const float* grad, float* velocity, int64_t n, const sgd_params& p);

/// step counts from 1.
void adam_step_ref(float* param, const float* grad, float* m, float* v, int64_t n, int64_t step,
                   const adam_params& p);
void adam_step_cpu(float* param, const float* grad, float* m, float* v, int64_t n, int64_t step,
                   const adam_params& p);

} // namespace comb::kernels
