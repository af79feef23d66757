// Naive softmax, cross-entropy and its gradient (tests only).
#include "kernels/ops/softmax.hpp"

#include <cmath>

namespace comb::kernels {

void softmax_ref(const float* x, int64_t rows, int64_t c, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    float m = x[r * c];
    for (int64_t j = 1; j < c; ++j)
      if (x[r * c + j] > m)
        m = x[r * c + j];
    double s = 0;
    for (int64_t j = 0; j < c; ++j)
      s += std::exp(static_cast<double>(x[r * c + j]) - m);
    for (int64_t j = 0; j < c; ++j)
      y[r * c + j] = static_cast<float>(std::exp(static_cast<double>(x[r * c + j]) - m) / s);
  }
}

float softmax_cross_entropy_ref(const float* logits, const int32_t* labels, int64_t rows, int64_t c,
                                float* probs) {
  softmax_ref(logits, rows, c, probs);
  double loss = 0;
  for (int64_t r = 0; r < rows; ++r) {
    float m = logits[r * c];
    for (int64_t j = 1; j < c; ++j)
      if (logits[r * c + j] > m)
        m = logits[r * c + j];
    double s = 0;
    for (int64_t j = 0; j < c; ++j)
      s += std::exp(static_cast<double>(logits[r * c + j]) - m);
    loss += -(logits[r * c + labels[r]] - m - std::log(s));
  }
  return static_cast<float>(loss / rows);
}

void softmax_cross_entropy_backward_ref(const float* probs, const int32_t* labels, int64_t rows,
                                        int64_t c, float* d_logits) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j)
      d_logits[r * c + j] = (probs[r * c + j] - (j == labels[r] ? 1.0f : 0.0f))
                            / static_cast<float>(rows);
}

} // namespace comb::kernels
