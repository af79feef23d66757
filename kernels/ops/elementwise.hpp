// comb::kernels element-wise ops: residual add, sigmoid and its gradient.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

void add_ref(const float* a, const float* b, int64_t n, float* y);
void add_cpu(const float* a, const float* b, int64_t n, float* y);

void sigmoid_ref(const float* x, int64_t n, float* y);
void sigmoid_cpu(const float* x, int64_t n, float* y);

void sigmoid_backward_ref(const float* y, const float* dy, int64_t n, float* dx);
void sigmoid_backward_cpu(const float* y, const float* dy, int64_t n, float* dx);

/// CUDA (elementwise.cu): y = a + b over n elements.
int add_cuda(const float* a, const float* b, int64_t n, float* y, cuda_stream s);

} // namespace comb::kernels
