// Fast softmax / cross-entropy: rows split across threads; the loss is summed per row into
// a buffer and reduced in row order, so it does not depend on scheduling.
#include "kernels/ops/softmax.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <cmath>
#include <vector>

namespace comb::kernels {

namespace {

/// Softmax of one row into y; returns the row's max and sets s to sum exp(x - max).
float row_softmax_sum(const float* x, int64_t c, float* y, double& s) {
  float m = x[0];
  for (int64_t j = 1; j < c; ++j)
    m = x[j] > m ? x[j] : m;
  s = 0;
  for (int64_t j = 0; j < c; ++j) {
    float e = std::exp(x[j] - m);
    y[j] = e;
    s += e;
  }
  float inv = static_cast<float>(1.0 / s);
  for (int64_t j = 0; j < c; ++j)
    y[j] *= inv;
  return m;
}

/// Softmax of one row; returns log(sum exp(x - max)) + max (the log-partition).
float row_softmax(const float* x, int64_t c, float* y) {
  double s;
  float m = row_softmax_sum(x, c, y, s);
  return static_cast<float>(m + std::log(s));
}

} // namespace

void softmax_cpu(const float* x, int64_t rows, int64_t c, float* y) {
  detail::parallel_range(rows, 64, [&](int64_t r0, int64_t r1) {
    double s;
    for (int64_t r = r0; r < r1; ++r)
      row_softmax_sum(x + r * c, c, y + r * c, s); // no log: only the loss needs it
  });
}

float softmax_cross_entropy_cpu(const float* logits, const int32_t* labels, int64_t rows, int64_t c,
                                float* probs) {
  std::vector<double> loss(static_cast<size_t>(rows));
  detail::parallel_range(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float lse = row_softmax(logits + r * c, c, probs + r * c);
      loss[static_cast<size_t>(r)] = static_cast<double>(lse) - logits[r * c + labels[r]];
    }
  });
  double s = 0;
  for (auto l : loss)
    s += l;
  return static_cast<float>(s / static_cast<double>(rows));
}

void softmax_cross_entropy_backward_cpu(const float* probs, const int32_t* labels, int64_t rows,
                                        int64_t c, float* d_logits) {
  float inv = 1.0f / static_cast<float>(rows);
  detail::parallel_range(rows, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t j = 0; j < c; ++j)
        d_logits[r * c + j] = probs[r * c + j] * inv;
      d_logits[r * c + labels[r]] -= inv;
    }
  });
}

} // namespace comb::kernels
