// Fast conv1d. With AVX-512 or AVX2: register tiles straight over the windows of x
// (detail/conv1d_tile.hpp; no im2col, no sgemm), sequences across threads, for the forward
// and, with valid padding, the backward (dw through detail::conv1d_weight_grad's tiles over
// x and dy, dx as the full convolution of dy through the forward's tiles). Otherwise: im2col
// in blocks of whole sequences (about 4096 output rows: big enough that each sgemm runs near
// its peak, small enough to bound the scratch; a row is the k * c_in floats of one window,
// one memcpy when the window is inside the sequence), each block one OpenBLAS sgemm writing
// straight into y. Backward: dw accumulates col^T dy over the blocks, dx is dy W^T scattered
// back (col2im).
#include "kernels/ops/conv1d.hpp"

#include "kernels/detail/conv1d_tile.hpp"
#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"
#include "kernels/detail/blas.hpp"

#include <algorithm>
#include <cstring>

namespace comb::kernels {

conv1d_dims make_conv1d_dims(int64_t b, int64_t t, int64_t c_in, int64_t k, int64_t c_out,
                             padding1d p) {
  conv1d_dims d{b, t, c_in, k, c_out, 0, 0};
  if (p == padding1d::same) {
    d.t_out = t;
    d.pad_before = (k - 1) / 2;
  } else {
    d.t_out = t - k + 1;
  }
  return d;
}

namespace {

constexpr int64_t block_rows = 4096;

/// Sequences per block.
int64_t seqs_per_block(const conv1d_dims& d) {
  return std::max<int64_t>(1, block_rows / std::max<int64_t>(d.t_out, 1));
}

/// Window rows of sequences [b0, b1) into col [(b1 - b0) * t_out, k * c_in].
void im2col(const conv1d_dims& d, const float* x, int64_t b0, int64_t b1, float* col) {
  int64_t kk = d.k * d.c_in;
  detail::parallel_range((b1 - b0) * d.t_out, 128, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t b = b0 + r / d.t_out, t = r % d.t_out;
      int64_t start = t - d.pad_before;
      float* dst = col + r * kk;
      const float* src = x + b * d.time * d.c_in;
      if (start >= 0 && start + d.k <= d.time) {
        std::memcpy(dst, src + start * d.c_in, static_cast<size_t>(kk) * sizeof(float));
        continue;
      }
      for (int64_t j = 0; j < d.k; ++j) {
        int64_t ti = start + j;
        if (ti < 0 || ti >= d.time)
          std::memset(dst + j * d.c_in, 0, static_cast<size_t>(d.c_in) * sizeof(float));
        else
          std::memcpy(dst + j * d.c_in, src + ti * d.c_in,
                      static_cast<size_t>(d.c_in) * sizeof(float));
      }
    }
  });
}

/// dx of sequences [b0, b1) += scatter of dcol; threads own whole sequences.
COMB_CLONES
void col2im_seq(const conv1d_dims& d, const float* dcol, int64_t b, int64_t b0, float* dx) {
  int64_t kk = d.k * d.c_in;
  float* dst = dx + b * d.time * d.c_in;
  for (int64_t t = 0; t < d.t_out; ++t) {
    const float* src = dcol + ((b - b0) * d.t_out + t) * kk;
    for (int64_t j = 0; j < d.k; ++j) {
      int64_t ti = t - d.pad_before + j;
      if (ti < 0 || ti >= d.time)
        continue;
      float* o = dst + ti * d.c_in;
      const float* s = src + j * d.c_in;
      for (int64_t c = 0; c < d.c_in; ++c)
        o[c] += s[c];
    }
  }
}

/// The tiled forward (AVX-512 or AVX2): weights packed once, then per sequence the register
/// tiles of detail/conv1d_tile.hpp write y directly. "same" padding copies the sequence between
/// zero rows first (a per-thread buffer), so every window is k contiguous rows.
void conv1d_tiles(const conv1d_dims& d, const float* x, const float* w, const float* bias,
                  float* y) {
#ifdef COMB_CONV1D_TILE_AVX512
  const int64_t kd = d.k * d.c_in, fp = detail::conv1d_packed_width(d.c_out);
  float* wp = detail::scratch(static_cast<size_t>(kd * fp), 1);
  detail::conv1d_pack_weights(w, kd, d.c_out, wp);
  const bool padded = d.pad_before > 0 || d.t_out + d.k - 1 > d.time;
  detail::parallel_range(d.batch, 1, [&](int64_t b0, int64_t b1) {
    const int64_t rows = d.t_out + d.k - 1;
    float* buf = padded ? detail::scratch(static_cast<size_t>(rows * d.c_in), 3) : nullptr;
    for (int64_t b = b0; b < b1; ++b) {
      const float* xs = x + b * d.time * d.c_in;
      if (padded) {
        std::fill(buf, buf + rows * d.c_in, 0.0f);
        std::memcpy(buf + d.pad_before * d.c_in, xs,
                    static_cast<size_t>(d.time * d.c_in) * sizeof(float));
        xs = buf;
      }
      float* ys = y + b * d.t_out * d.c_out;
      for (int64_t col0 = 0, width = 0; col0 < fp; col0 += width) {
        width = detail::conv1d_block_width(fp, col0);
        detail::conv1d_store_block(xs, d.c_in, kd, d.t_out, wp, col0, width, d.c_out, bias, ys);
      }
    }
  });
#endif
}

} // namespace

void conv1d_cpu(const conv1d_dims& d, const float* x, const float* w, const float* bias, float* y) {
  if (detail::conv1d_tiles_available()) {
    conv1d_tiles(d, x, w, bias, y);
    return;
  }
  int64_t kk = d.k * d.c_in;
  int64_t per = seqs_per_block(d);
  float* col = detail::scratch(static_cast<size_t>(per * d.t_out * kk), 1);
  for (int64_t b0 = 0; b0 < d.batch; b0 += per) {
    int64_t b1 = std::min(d.batch, b0 + per);
    int64_t m = (b1 - b0) * d.t_out;
    float* out = y + b0 * d.t_out * d.c_out;
    if (bias)
      for (int64_t r = 0; r < m; ++r)
        std::memcpy(out + r * d.c_out, bias, static_cast<size_t>(d.c_out) * sizeof(float));
    im2col(d, x, b0, b1, col);
    detail::sgemm(/*trans_a=*/false, /*trans_b=*/false, m, d.c_out, kk, 1.0f, col, kk, w, d.c_out,
                  bias ? 1.0f : 0.0f, out, d.c_out);
  }
}

namespace {

/// The valid-padding backward on the tiles (AVX-512 or AVX2). dw: register tiles over each
/// sequence's x and dy as they are (detail::conv1d_weight_grad_tiles, no copies), the
/// sequences in a fixed number of parts across the pool, each part summing into its own
/// transposed partial [c_out, k * c_in]; the partials are then added in part order (the same
/// sums whatever the threads do) into dw.
/// dx: the full convolution of dy with the taps flipped and transposed, through the
/// forward's register tiles (each sequence's dy between k - 1 zero rows on either side), so
/// no dcol buffer and no col2im.
void conv1d_backward_tiles(const conv1d_dims& d, const float* x, const float* w, const float* dy,
                           float* dx, float* dw) {
#ifdef COMB_CONV1D_TILE_AVX512
  const int64_t f = d.c_out, kdw = d.k * d.c_in;
  const int parts = static_cast<int>(
    std::min<int64_t>(d.batch, std::max<int64_t>(1, int64_t{detail::cpu_threads()} * 2)));
  float* partial = detail::scratch(static_cast<size_t>(parts * f * kdw), 2);
  detail::parallel_for(parts, [&](int p) {
    float* dwt = partial + p * f * kdw;
    std::fill(dwt, dwt + f * kdw, 0.0f);
    for (int64_t b = d.batch * p / parts; b < d.batch * (p + 1) / parts; ++b)
      detail::conv1d_weight_grad_tiles(x + b * d.time * d.c_in, d.c_in, kdw,
                                       dy + b * d.t_out * f, f, d.t_out, dwt);
  });
  detail::parallel_range(kdw, 16, [&](int64_t k0, int64_t k1) {
    for (int64_t kk = k0; kk < k1; ++kk)
      for (int64_t o = 0; o < f; ++o) {
        float sum = partial[o * kdw + kk];
        for (int p = 1; p < parts; ++p)
          sum += partial[(p * f + o) * kdw + kk];
        dw[kk * f + o] = sum;
      }
  });
  if (!dx)
    return;
  // w' [k * c_out, c_in]: w'[j' * c_out + o, c] = w[k - 1 - j', c, o], packed for the tiles.
  const int64_t kd = d.k * f, fp = detail::conv1d_packed_width(d.c_in);
  float* wt = detail::scratch(static_cast<size_t>(kd * d.c_in), 3);
  for (int64_t jp = 0; jp < d.k; ++jp)
    for (int64_t c = 0; c < d.c_in; ++c)
      for (int64_t o = 0; o < f; ++o)
        wt[(jp * f + o) * d.c_in + c] = w[((d.k - 1 - jp) * d.c_in + c) * f + o];
  float* wp = detail::scratch(static_cast<size_t>(kd * fp), 1);
  detail::conv1d_pack_weights(wt, kd, d.c_in, wp);
  detail::parallel_range(d.batch, 1, [&](int64_t b0, int64_t b1) {
    const int64_t n = d.t_out + 2 * (d.k - 1);
    float* buf = detail::scratch(static_cast<size_t>(n * f), 3);
    std::fill(buf, buf + (d.k - 1) * f, 0.0f);
    std::fill(buf + (d.k - 1 + d.t_out) * f, buf + n * f, 0.0f);
    for (int64_t b = b0; b < b1; ++b) {
      std::memcpy(buf + (d.k - 1) * f, dy + b * d.t_out * f,
                  static_cast<size_t>(d.t_out * f) * sizeof(float));
      float* out = dx + b * d.time * d.c_in;
      for (int64_t col0 = 0, width = 0; col0 < fp; col0 += width) {
        width = detail::conv1d_block_width(fp, col0);
        detail::conv1d_store_block(buf, f, kd, d.time, wp, col0, width, d.c_in, nullptr, out);
      }
    }
  });
#endif
}

} // namespace

void conv1d_backward_cpu(const conv1d_dims& d, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* dbias) {
  if (detail::conv1d_tiles_available() && d.pad_before == 0 && d.t_out == d.time - d.k + 1
      && d.batch > 0) {
    conv1d_backward_tiles(d, x, w, dy, dx, dw);
    if (dbias) {
      std::memset(dbias, 0, static_cast<size_t>(d.c_out) * sizeof(float));
      for (int64_t r = 0; r < d.batch * d.t_out; ++r)
        for (int64_t o = 0; o < d.c_out; ++o)
          dbias[o] += dy[r * d.c_out + o];
    }
    return;
  }
  int64_t kk = d.k * d.c_in;
  int64_t per = seqs_per_block(d);
  float* col = detail::scratch(static_cast<size_t>(per * d.t_out * kk), 1);
  float* dcol = dx ? detail::scratch(static_cast<size_t>(per * d.t_out * kk), 2) : nullptr;
  if (dx)
    std::memset(dx, 0, static_cast<size_t>(d.batch * d.time * d.c_in) * sizeof(float));
  if (d.batch == 0)
    std::memset(dw, 0, static_cast<size_t>(kk * d.c_out) * sizeof(float));
  for (int64_t b0 = 0; b0 < d.batch; b0 += per) {
    int64_t b1 = std::min(d.batch, b0 + per);
    int64_t m = (b1 - b0) * d.t_out;
    const float* g = dy + b0 * d.t_out * d.c_out;
    im2col(d, x, b0, b1, col);
    detail::sgemm(/*trans_a=*/true, /*trans_b=*/false, kk, d.c_out, m, 1.0f, col, kk, g, d.c_out,
                  b0 == 0 ? 0.0f : 1.0f, dw, d.c_out);
    if (dx) {
      detail::sgemm(/*trans_a=*/false, /*trans_b=*/true, m, kk, d.c_out, 1.0f, g, d.c_out, w,
                    d.c_out, 0.0f, dcol, kk);
      detail::parallel_range(b1 - b0, 1, [&](int64_t s0, int64_t s1) {
        for (int64_t b = b0 + s0; b < b0 + s1; ++b)
          col2im_seq(d, dcol, b, b0, dx);
      });
    }
  }
  if (dbias) {
    std::memset(dbias, 0, static_cast<size_t>(d.c_out) * sizeof(float));
    for (int64_t r = 0; r < d.batch * d.t_out; ++r)
      for (int64_t o = 0; o < d.c_out; ++o)
        dbias[o] += dy[r * d.c_out + o];
  }
}

} // namespace comb::kernels
