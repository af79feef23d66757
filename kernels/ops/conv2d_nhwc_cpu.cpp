// Fast CPU dense convolution over NHWC; see conv2d_nhwc.hpp (the reference is
// conv2d_nhwc_ref.cpp).
#include "kernels/ops/conv2d_nhwc.hpp"

#include "kernels/detail/cpu_pool.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

namespace comb::kernels {

conv2d_nhwc_weights pack_conv2d_nhwc(const float* hwio, int kh, int kw, int cin, int cout) {
  conv2d_nhwc_weights w;
  w.kh = kh;
  w.kw = kw;
  w.cin = cin;
  w.cout = cout;
  w.packed = pack_gemm_b(hwio, kh * kw * cin, cout);
  return w;
}

void conv2d_nhwc(const conv2d_nhwc_params& p, const conv2d_nhwc_weights& w, const float* in,
                 const float* bias, float* out, const float* residual) {
  gemm_epilogue ep;
  ep.bias = bias;
  ep.lo = p.lo;
  ep.hi = p.hi;
  ep.residual = residual;
  ep.ldr = w.cout;
  const int64_t pixels = static_cast<int64_t>(p.n) * p.out_h * p.out_w;
  if (w.kh == 1 && w.kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0
      && p.pad_left == 0 && p.out_h == p.h && p.out_w == p.w) {
    fused_gemm(in, pixels, p.c, w.packed, ep, out, w.cout);
    return;
  }
  // im2col in blocks of output pixels so the lowered matrix stays small.
  const int k = w.kh * w.kw * p.c;
  // About 256 KiB of lowered rows per block, so they are still in L2 when the GEMM reads them.
  const int64_t block = std::max<int64_t>(64, (1 << 16) / std::max(k, 1));
  const int64_t blocks = (pixels + block - 1) / block;
  // One block: its rows lowered into this thread's buffer, then the GEMM with the epilogue.
  auto run_block = [&](int64_t q0) {
    const int64_t q1 = std::min(pixels, q0 + block);
    // Thread-local: a fresh buffer per call would cost page faults every time.
    thread_local std::vector<float> cols;
    if (cols.size() < static_cast<size_t>(block) * k)
      cols.resize(static_cast<size_t>(block) * k);
    for (int64_t q = q0; q < q1; ++q) {
      int64_t b = q / (static_cast<int64_t>(p.out_h) * p.out_w);
      int rem = static_cast<int>(q % (static_cast<int64_t>(p.out_h) * p.out_w));
      int oy = rem / p.out_w, ox = rem % p.out_w;
      float* row = cols.data() + (q - q0) * k;
      for (int ky = 0; ky < w.kh; ++ky)
        for (int kx = 0; kx < w.kw; ++kx) {
          float* dst = row + (ky * w.kw + kx) * p.c;
          int iy = oy * p.stride_h - p.pad_top + ky;
          int ix = ox * p.stride_w - p.pad_left + kx;
          if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) {
            std::fill(dst, dst + p.c, 0.0f);
          } else {
            // A plain loop: for the few channels of a stem, a memcpy call costs more.
            const float* src = in + ((b * p.h + iy) * p.w + ix) * p.c;
            for (int ci = 0; ci < p.c; ++ci)
              dst[ci] = src[ci];
          }
        }
    }
    gemm_epilogue epq = ep;
    if (residual)
      epq.residual = residual + q0 * w.cout;
    fused_gemm(cols.data(), q1 - q0, k, w.packed, epq, out + q0 * w.cout, w.cout);
  };
  const int threads = detail::cpu_threads();
  if (threads > 1 && blocks >= 2 * threads) {
    // Enough blocks: each thread lowers and multiplies whole blocks (the GEMM inside runs on
    // that thread), so the lowering runs in parallel too and the pool forks once, not once a
    // block.
    detail::parallel_for(static_cast<int>(blocks), [&](int t) { run_block(t * block); });
    return;
  }
  // Few blocks: each lowered on this thread, its GEMM split across the pool.
  for (int64_t q0 = 0; q0 < pixels; q0 += block)
    run_block(q0);
}

} // namespace comb::kernels
