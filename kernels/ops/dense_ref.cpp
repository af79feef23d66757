// Naive dense layer and its gradients (tests only).
#include "kernels/ops/dense.hpp"

namespace comb::kernels {

void dense_ref(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
               const float* bias, float* y) {
  for (int64_t i = 0; i < b; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = bias ? bias[o] : 0.0;
      for (int64_t k = 0; k < in; ++k)
        s += static_cast<double>(x[i * in + k]) * w[k * out + o];
      y[i * out + o] = static_cast<float>(s);
    }
}

void dense_backward_ref(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                        const float* dy, float* dx, float* dw, float* dbias) {
  for (int64_t k = 0; k < in; ++k)
    for (int64_t o = 0; o < out; ++o) {
      double s = 0;
      for (int64_t i = 0; i < b; ++i)
        s += static_cast<double>(x[i * in + k]) * dy[i * out + o];
      dw[k * out + o] = static_cast<float>(s);
    }
  if (dx)
    for (int64_t i = 0; i < b; ++i)
      for (int64_t k = 0; k < in; ++k) {
        double s = 0;
        for (int64_t o = 0; o < out; ++o)
          s += static_cast<double>(dy[i * out + o]) * w[k * out + o];
        dx[i * in + k] = static_cast<float>(s);
      }
  if (dbias)
    for (int64_t o = 0; o < out; ++o) {
      double s = 0;
      for (int64_t i = 0; i < b; ++i)
        s += dy[i * out + o];
      dbias[o] = static_cast<float>(s);
    }
}

} // namespace comb::kernels
