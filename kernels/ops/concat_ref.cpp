// Naive concat and split along the last dimension (tests only).
#include "kernels/ops/concat.hpp"

namespace comb::kernels {

void concat_ref(const float* const* parts, const int64_t* widths, int64_t nparts, int64_t rows,
                float* y) {
  int64_t total = 0;
  for (int64_t p = 0; p < nparts; ++p)
    total += widths[p];
  for (int64_t r = 0; r < rows; ++r) {
    int64_t off = 0;
    for (int64_t p = 0; p < nparts; ++p) {
      for (int64_t j = 0; j < widths[p]; ++j)
        y[r * total + off + j] = parts[p][r * widths[p] + j];
      off += widths[p];
    }
  }
}

void concat_backward_ref(const float* dy, int64_t rows, const int64_t* widths, float* const* parts,
                         int64_t nparts) {
  int64_t total = 0;
  for (int64_t p = 0; p < nparts; ++p)
    total += widths[p];
  for (int64_t r = 0; r < rows; ++r) {
    int64_t off = 0;
    for (int64_t p = 0; p < nparts; ++p) {
      for (int64_t j = 0; j < widths[p]; ++j)
        parts[p][r * widths[p] + j] = dy[r * total + off + j];
      off += widths[p];
    }
  }
}

} // namespace comb::kernels
