// comb::kernels dense layer: y[b, out] = x[b, in] w[in, out] + bias[out], and its
// gradients. The fast version is OpenBLAS sgemm with the bias broadcast as the initial C.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

void dense_ref(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
               const float* bias, float* y);
void dense_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
               const float* bias, float* y);

/// dx and dbias may be nullptr.
void dense_backward_ref(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                        const float* dy, float* dx, float* dw, float* dbias);
void dense_backward_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                        const float* dy, float* dx, float* dw, float* dbias);

} // namespace comb::kernels
