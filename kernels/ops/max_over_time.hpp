// comb::kernels max over time: y[b, c] = max over t < valid of x[b, t, c] (the first
// maximum wins; argmax kept for the backward pass), and its gradient.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

void max_over_time_ref(const float* x, int64_t b, int64_t t, int64_t c, int64_t valid, float* y,
                       int32_t* argmax);
void max_over_time_cpu(const float* x, int64_t b, int64_t t, int64_t c, int64_t valid, float* y,
                       int32_t* argmax);

void max_over_time_backward_ref(const float* dy, const int32_t* argmax, int64_t b, int64_t t,
                                int64_t c, float* dx);
void max_over_time_backward_cpu(const float* dy, const int32_t* argmax, int64_t b, int64_t t,
                                int64_t c, float* dx);

/// CUDA (max_over_time.cu): the first maximum over t < valid of x[batch][time][channels];
/// argmax (may be nullptr) receives its t.
int max_over_time_cuda(const float* x, int batch, int time, int valid, int channels, float* out,
                       int32_t* argmax, cuda_stream s);

} // namespace comb::kernels
