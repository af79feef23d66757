// Naive conv1d and its gradients (tests only).
#include "kernels/ops/conv1d.hpp"

namespace comb::kernels {

void conv1d_ref(const conv1d_dims& d, const float* x, const float* w, const float* bias, float* y) {
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t t = 0; t < d.t_out; ++t)
      for (int64_t o = 0; o < d.c_out; ++o) {
        double s = bias ? bias[o] : 0.0;
        for (int64_t k = 0; k < d.k; ++k) {
          int64_t ti = t + k - d.pad_before;
          if (ti < 0 || ti >= d.time)
            continue;
          for (int64_t c = 0; c < d.c_in; ++c)
            s += static_cast<double>(x[(b * d.time + ti) * d.c_in + c])
                 * w[(k * d.c_in + c) * d.c_out + o];
        }
        y[(b * d.t_out + t) * d.c_out + o] = static_cast<float>(s);
      }
}

void conv1d_backward_ref(const conv1d_dims& d, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* dbias) {
  if (dx)
    for (int64_t i = 0; i < d.batch * d.time * d.c_in; ++i)
      dx[i] = 0;
  for (int64_t i = 0; i < d.k * d.c_in * d.c_out; ++i)
    dw[i] = 0;
  if (dbias)
    for (int64_t o = 0; o < d.c_out; ++o)
      dbias[o] = 0;
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t t = 0; t < d.t_out; ++t)
      for (int64_t o = 0; o < d.c_out; ++o) {
        float g = dy[(b * d.t_out + t) * d.c_out + o];
        if (dbias)
          dbias[o] += g;
        for (int64_t k = 0; k < d.k; ++k) {
          int64_t ti = t + k - d.pad_before;
          if (ti < 0 || ti >= d.time)
            continue;
          for (int64_t c = 0; c < d.c_in; ++c) {
            dw[(k * d.c_in + c) * d.c_out + o] += g * x[(b * d.time + ti) * d.c_in + c];
            if (dx)
              dx[(b * d.time + ti) * d.c_in + c] += g * w[(k * d.c_in + c) * d.c_out + o];
          }
        }
      }
}

} // namespace comb::kernels
