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

/// The backward of a narrow layer (out <= 16: a classifier head) whose input h [b, in] is a
/// ReLU's output, through that ReLU: dw [in, out] = h^T dy, dbias [out] = dy's column sums,
/// dh_pre [b, in] = dy w^T where h > 0 and 0 elsewhere (the gradient at the ReLU's input),
/// and dbias_prev [in] = dh_pre's column sums (the ReLU layer's bias gradient; may be
/// nullptr). What dense_backward_cpu and bias_act_backward_cpu(relu) give one after the
/// other, in two passes over h: on AVX2 (without AVX-512) both products by register tiles
/// instead of two sgemms of inner or outer size out, which OpenBLAS runs at a fraction of its
/// speed. Every sum runs in row order whatever the split across threads. Any out works.
void dense_relu_narrow_backward_cpu(const float* h, int64_t b, int64_t in, const float* w,
                                    int64_t out, const float* dy, float* dh_pre, float* dw,
                                    float* dbias, float* dbias_prev);

} // namespace comb::kernels
