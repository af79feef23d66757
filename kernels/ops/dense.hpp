// comb::kernels dense layer: y[b, out] = x[b, in] w[in, out] + bias[out], and its
// gradients. The fast version is OpenBLAS sgemm with the bias broadcast as the initial C.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>
#include <functional>

namespace comb::kernels {

void dense_ref(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
               const float* bias, float* y);
void dense_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
               const float* bias, float* y);
/// dense_cpu followed by ReLU (max(0, .)), fused into the store where the AVX-512 GEMM runs.
void dense_relu_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                    const float* bias, float* y);
/// dense_relu_cpu that hands each block of rows [r0, r1) of y to then(r0, r1) as soon as
/// those rows are final, while they are still in cache (the next layer of an MLP runs
/// there). Blocks come from any thread of the CPU pool, each once, in no fixed order.
void dense_relu_then_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                         const float* bias, float* y,
                         const std::function<void(int64_t, int64_t)>& then);

/// dx and dbias may be nullptr.
void dense_backward_ref(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                        const float* dy, float* dx, float* dw, float* dbias);
void dense_backward_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                        const float* dy, float* dx, float* dw, float* dbias);

} // namespace comb::kernels
