// Fast top-k: per row a partial sort of indices (std::partial_sort, O(c log k)), rows
// split across threads.
#include "kernels/ops/top_k.hpp"

#include "kernels/detail/cpu_pool.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace comb::kernels {

void top_k_cpu(const float* x, int64_t rows, int64_t c, int k, float* values, int32_t* indices) {
  detail::parallel_range(rows, 8, [&](int64_t r0, int64_t r1) {
    std::vector<int32_t> idx(static_cast<size_t>(c));
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = x + r * c;
      std::iota(idx.begin(), idx.end(), 0);
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
        float va = row[a], vb = row[b];
        bool na = std::isnan(va), nb = std::isnan(vb);
        if (na != nb)
          return nb;
        if (!na && va != vb)
          return va > vb;
        return a < b;
      });
      for (int j = 0; j < k; ++j) {
        indices[r * k + j] = idx[static_cast<size_t>(j)];
        values[r * k + j] = row[idx[static_cast<size_t>(j)]];
      }
    }
  });
}

} // namespace comb::kernels
