// Fast concat and split: one memcpy per row and part, rows split across threads.
#include "kernels/ops/concat.hpp"

#include "kernels/detail/cpu_pool.hpp"

#include <cstring>

namespace comb::kernels {

void concat_cpu(const float* const* parts, const int64_t* widths, int64_t nparts, int64_t rows,
                float* y) {
  int64_t total = 0;
  for (int64_t p = 0; p < nparts; ++p)
    total += widths[p];
  detail::parallel_range(rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t off = 0;
      for (int64_t p = 0; p < nparts; ++p) {
        std::memcpy(y + r * total + off, parts[p] + r * widths[p],
                    static_cast<size_t>(widths[p]) * sizeof(float));
        off += widths[p];
      }
    }
  });
}

void concat_backward_cpu(const float* dy, int64_t rows, const int64_t* widths, float* const* parts,
                         int64_t nparts) {
  int64_t total = 0;
  for (int64_t p = 0; p < nparts; ++p)
    total += widths[p];
  detail::parallel_range(rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t off = 0;
      for (int64_t p = 0; p < nparts; ++p) {
        std::memcpy(parts[p] + r * widths[p], dy + r * total + off,
                    static_cast<size_t>(widths[p]) * sizeof(float));
        off += widths[p];
      }
    }
  });
}

} // namespace comb::kernels
