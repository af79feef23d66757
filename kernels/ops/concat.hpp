// comb::kernels concat along the last dimension: rows of the parts placed side by side, and
// its gradient, which splits the rows back. Pure functions of their arguments, thread-safe.
// The _ref versions are naive loops used only by tests; the _cpu versions are the CPU
// backend's fast ones.
#pragma once

#include <cstdint>

namespace comb::kernels {

void concat_ref(const float* const* parts, const int64_t* widths, int64_t nparts, int64_t rows,
                float* y);
void concat_cpu(const float* const* parts, const int64_t* widths, int64_t nparts, int64_t rows,
                float* y);

void concat_backward_ref(const float* dy, int64_t rows, const int64_t* widths, float* const* parts,
                         int64_t nparts);
void concat_backward_cpu(const float* dy, int64_t rows, const int64_t* widths, float* const* parts,
                         int64_t nparts);

} // namespace comb::kernels
