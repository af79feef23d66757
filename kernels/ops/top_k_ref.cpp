// Naive top-k by repeated selection (tests only).
#include "kernels/ops/top_k.hpp"

#include <cmath>
#include <vector>

namespace comb::kernels {

namespace {

/// a ranks before b: larger first, NaN last, ties to the lower index.
bool before(float a, int64_t ia, float b, int64_t ib) {
  bool na = std::isnan(a), nb = std::isnan(b);
  if (na != nb)
    return nb;
  if (!na && a != b)
    return a > b;
  return ia < ib;
}

} // namespace

void top_k_ref(const float* x, int64_t rows, int64_t c, int k, float* values, int32_t* indices) {
  std::vector<bool> taken(static_cast<size_t>(c));
  for (int64_t r = 0; r < rows; ++r) {
    std::fill(taken.begin(), taken.end(), false);
    for (int j = 0; j < k; ++j) {
      int64_t best = -1;
      for (int64_t i = 0; i < c; ++i)
        if (!taken[static_cast<size_t>(i)]
            && (best < 0 || before(x[r * c + i], i, x[r * c + best], best)))
          best = i;
      taken[static_cast<size_t>(best)] = true;
      values[r * k + j] = x[r * c + best];
      indices[r * k + j] = static_cast<int32_t>(best);
    }
  }
}

} // namespace comb::kernels
