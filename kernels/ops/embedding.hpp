// comb::kernels embedding lookup: out[i, :] = table[tokens[i], :] for n tokens, and its
// gradient, a scatter-add into a [vocab, e] table. Tokens are checked by the caller.
// Pure functions of their arguments (outputs are overwritten, never read), thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>

namespace comb::kernels {

void embedding_ref(const int32_t* tokens, int64_t n, const float* table, int64_t e, float* out);
void embedding_cpu(const int32_t* tokens, int64_t n, const float* table, int64_t e, float* out);

void embedding_backward_ref(const int32_t* tokens, int64_t n, const float* d_out, int64_t e,
                            int64_t vocab, float* d_table);
void embedding_backward_cpu(const int32_t* tokens, int64_t n, const float* d_out, int64_t e,
                            int64_t vocab, float* d_table);

/// CUDA (embedding.cu): out[i][:] = table[ids[i]][:]; an id outside [0, vocab) zero-fills
/// its row and writes 1 into *bad (device memory).
int embedding_cuda(const int32_t* ids, int64_t n, const float* table, int vocab, int dim,
                   float* out, int* bad, cuda_stream s);

} // namespace comb::kernels
