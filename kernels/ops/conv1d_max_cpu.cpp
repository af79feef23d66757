// Fast conv1d_max (see conv1d_max.hpp). Forward: the weights are packed once per call
// (detail/conv1d_tile.hpp); then, per sequence, tiles of 8 time steps x up to 3 vectors of
// 16 filters accumulate in 24 AVX-512 registers (AVX2: 4 or 6 x 2 or 3 vectors of 8 in 12),
// reading each window straight from x, and fold into a running max and argmax: the
// convolution output never reaches memory. Sequences are split across threads. Without
// either: conv1d_cpu (im2col + sgemm) into a buffer, then max_over_time_cpu.
// Backward: g = dy * act'(y); dbias = column sums of g; row f of dw^T [c_out, k * c_in] =
// sum over b of g[b, f] * window(b, argmax[b, f]) (threads own filters), then transposed
// into dw; window(b, argmax[b, f]) of dx += g[b, f] * row f of w^T (threads own
// sequences). Windows with g == 0 are skipped (so non-finite inputs outside the arg-max
// windows do not reach the gradients, unlike a dense conv1d backward). Sums run in a fixed
// order, so results do not depend on thread scheduling.
#include "kernels/ops/conv1d_max.hpp"

#include "kernels/ops/max_over_time.hpp"

#include "kernels/detail/conv1d_tile.hpp"
#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

namespace comb::kernels {

namespace {

float act_of(float v, activation a) {
  switch (a) {
  case activation::relu:
    return std::max(v, 0.0f); // NaN stays NaN
  case activation::relu6:
    return std::min(std::max(v, 0.0f), 6.0f);
  default:
    return v;
  }
}

float act_grad(float y, activation a) {
  switch (a) {
  case activation::relu:
    return y > 0 ? 1.0f : 0.0f;
  case activation::relu6:
    return y > 0 && y < 6 ? 1.0f : 0.0f;
  default:
    return 1.0f;
  }
}

COMB_CLONES
void axpy(int64_t n, float a, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i)
    y[i] += a * x[i];
}

} // namespace

void conv1d_max_cpu(const conv1d_dims& d, const float* x, const float* w, const float* bias,
                    activation a, float* y, int32_t* argmax) {
  const int64_t f_out = d.c_out;
  if (!detail::conv1d_tiles_available()) {
    // Portable: the convolution through conv1d_cpu (im2col + sgemm) into a buffer, then
    // the max over time; bias and activation below.
    float* conv = detail::scratch(static_cast<size_t>(d.batch * d.t_out * f_out), 2);
    conv1d_cpu(d, x, w, nullptr, conv);
    if (!d.lengths) {
      max_over_time_cpu(conv, d.batch, d.t_out, f_out, d.t_out, y, argmax);
    } else {
      detail::parallel_range(d.batch, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
          max_over_time_cpu(conv + b * d.t_out * f_out, 1, d.t_out, f_out, d.lengths[b] - d.k + 1,
                            y + b * f_out, argmax + b * f_out);
      });
    }
    for (int64_t i = 0; i < d.batch * f_out; ++i)
      y[i] = act_of(y[i] + (bias ? bias[i % f_out] : 0.0f), a);
    return;
  }
#ifdef COMB_CONV1D_TILE_AVX512
  const int64_t kd = d.k * d.c_in, fp = detail::conv1d_packed_width(f_out);
  float* wp = detail::scratch(static_cast<size_t>(kd * fp), 1);
  detail::conv1d_pack_weights(w, kd, f_out, wp);
  detail::parallel_range(d.batch, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> best(static_cast<size_t>(fp));
    std::vector<int32_t> arg(static_cast<size_t>(fp));
    for (int64_t b = b0; b < b1; ++b) {
      const float* xs = x + b * d.time * d.c_in;
      const int64_t t_out = d.lengths ? d.lengths[b] - d.k + 1 : d.t_out;
      for (int64_t col0 = 0, width = 0; col0 < fp; col0 += width) {
        width = detail::conv1d_block_width(fp, col0);
        detail::conv1d_max_block(xs, d.c_in, kd, t_out, wp, col0, width, best.data(),
                                 arg.data());
      }
      for (int64_t f = 0; f < f_out; ++f) {
        y[b * f_out + f] = act_of(best[static_cast<size_t>(f)] + (bias ? bias[f] : 0.0f), a);
        argmax[b * f_out + f] = arg[static_cast<size_t>(f)];
      }
    }
  });
#endif
}

void conv1d_max_backward_cpu(const conv1d_dims& d, const float* x, const float* w, const float* y,
                             const int32_t* argmax, const float* dy, activation a, float* dx,
                             float* dw, float* dbias) {
  const int64_t nb = d.batch, f_out = d.c_out, kd = d.k * d.c_in;
  float* g = detail::scratch(static_cast<size_t>(std::max<int64_t>(nb * f_out, 1)), 1);
  for (int64_t i = 0; i < nb * f_out; ++i)
    g[i] = dy[i] * act_grad(y[i], a);
  if (dbias) {
    std::fill(dbias, dbias + f_out, 0.0f);
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t f = 0; f < f_out; ++f)
        dbias[f] += g[b * f_out + f];
  }
  // dw^T, one row per filter, then transposed.
  float* dwt = detail::scratch(static_cast<size_t>(f_out * kd), 2);
  detail::parallel_range(f_out, 4, [&](int64_t f0, int64_t f1) {
    for (int64_t f = f0; f < f1; ++f) {
      float* row = dwt + f * kd;
      std::fill(row, row + kd, 0.0f);
      for (int64_t b = 0; b < nb; ++b) {
        float gv = g[b * f_out + f];
        if (gv != 0.0f)
          axpy(kd, gv, x + (b * d.time + argmax[b * f_out + f]) * d.c_in, row);
      }
    }
  });
  for (int64_t kk = 0; kk < kd; ++kk)
    for (int64_t f = 0; f < f_out; ++f)
      dw[kk * f_out + f] = dwt[f * kd + kk];
  if (!dx)
    return;
  float* wt = detail::scratch(static_cast<size_t>(f_out * kd), 3);
  for (int64_t kk = 0; kk < kd; ++kk)
    for (int64_t f = 0; f < f_out; ++f)
      wt[f * kd + kk] = w[kk * f_out + f];
  detail::parallel_range(nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t f = 0; f < f_out; ++f) {
        float gv = g[b * f_out + f];
        if (gv != 0.0f)
          axpy(kd, gv, wt + f * kd, dx + (b * d.time + argmax[b * f_out + f]) * d.c_in);
      }
  });
}

} // namespace comb::kernels
