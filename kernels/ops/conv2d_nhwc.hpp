// comb::kernels::conv2d_nhwc: dense 2-D convolution (groups = 1) on NHWC floats with stride,
// explicit padding, bias and a fused clamp. Weights are [kh][kw][cin][cout] (HWIO). The
// fast version lowers blocks of output pixels to a matrix (im2col) and runs fused_gemm on
// a packed copy of the weights (conv2d_nhwc_weights, built once per layer): with at least two
// blocks per thread, the CPU pool's threads take whole blocks (lowering and GEMM), otherwise
// each block's GEMM is split across the pool; 1x1 stride-1 convolutions skip the lowering. A
// plain reference (conv2d_nhwc_ref.cpp) sits beside it. Pure and thread-safe.
#pragma once

#include "kernels/ops/depthwise_conv_nhwc.hpp"
#include "kernels/ops/fused_gemm.hpp"

namespace comb::kernels {

/// Weights of a dense NHWC convolution, packed for fused_gemm.
struct conv2d_nhwc_weights {
  int kh = 1, kw = 1, cin = 0, cout = 0;
  packed_gemm_b packed;
};

/// Packs HWIO weights (kh*kw*cin*cout floats).
conv2d_nhwc_weights pack_conv2d_nhwc(const float* hwio, int kh, int kw, int cin, int cout);

/// Plain reference (conv2d_nhwc_ref.cpp, linked by tests only) on unpacked HWIO weights.
/// p.c is cin; out has p.n*p.out_h*p.out_w*cout floats; `residual` as in conv2d_nhwc.
void conv2d_nhwc_ref(const conv2d_nhwc_params& p, int cout, const float* in, const float* hwio,
                     const float* bias, float* out, const float* residual = nullptr);

/// Fast version. `residual` (same shape as out, or nullptr) is added before the clamp.
void conv2d_nhwc(const conv2d_nhwc_params& p, const conv2d_nhwc_weights& w, const float* in,
                 const float* bias, float* out, const float* residual = nullptr);

/// CUDA (conv2d_nhwc.cu): HWIO [khw][cin][cout] -> OHWI [cout][khw][cin] (cuDNN's NHWC
/// filter layout), device pointers. The convolution itself runs through cuDNN
/// (cuda::detail::conv2d_device, also in conv2d_nhwc.cu).
int hwio_to_ohwi_cuda(const float* hwio, int khw, int cin, int cout, float* ohwi, cuda_stream s);

} // namespace comb::kernels
