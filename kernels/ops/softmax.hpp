// comb::kernels softmax and cross-entropy over rows x c logits (max-subtracted, so large
// logits do not overflow), mean loss over rows, and the fused gradient (p - onehot) / rows.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

void softmax_ref(const float* x, int64_t rows, int64_t c, float* y);
void softmax_cpu(const float* x, int64_t rows, int64_t c, float* y);

/// Returns the mean of -log(probs[label]); labels checked by the caller.
float softmax_cross_entropy_ref(const float* logits, const int32_t* labels, int64_t rows, int64_t c,
                                float* probs);
float softmax_cross_entropy_cpu(const float* logits, const int32_t* labels, int64_t rows, int64_t c,
                                float* probs);

void softmax_cross_entropy_backward_ref(const float* probs, const int32_t* labels, int64_t rows,
                                        int64_t c, float* d_logits);
void softmax_cross_entropy_backward_cpu(const float* probs, const int32_t* labels, int64_t rows,
                                        int64_t c, float* d_logits);

/// CUDA (softmax.cu): row-wise softmax of x[rows][cols] into out; rows < 2^31.
int softmax_cuda(const float* x, int64_t rows, int cols, float* out, cuda_stream s);

} // namespace comb::kernels
