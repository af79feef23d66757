// comb::kernels::depthwise_conv_nhwc: depthwise 2-D convolution (one filter per channel,
// depth multiplier 1) on NHWC floats with stride, explicit (possibly asymmetric) padding,
// bias and a fused clamp (ReLU/ReLU6). Weights are laid out [kh][kw][c], as TFLite stores
// them. A plain reference (depthwise_conv_nhwc_ref.cpp) and a fast version
// (depthwise_conv_nhwc_cpu.cpp: vectorised across channels, AVX-512 chosen at run time, rows
// split across the CPU pool) sit side by side; both are pure and thread-safe.
#pragma once

#include "kernels/op.hpp"

#include <cstdint>
#include <limits>

namespace comb::kernels {

/// Shape and hyper-parameters of a 2-D convolution over NHWC data.
struct conv2d_nhwc_params {
  int n = 1, h = 0, w = 0, c = 0;
  int kh = 3, kw = 3;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0;
  int out_h = 0, out_w = 0;
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
};

/// Output size along one axis for "same" padding the TensorFlow way (extra pad at the end):
/// returns out = ceil(in / stride) and sets pad_begin.
int same_padding(int in, int k, int stride, int& pad_begin);

/// Plain reference (depthwise_conv_nhwc_ref.cpp, linked by tests only). in: n*h*w*c,
/// weights kh*kw*c, bias c (or nullptr), out n*out_h*out_w*c.
void depthwise_conv_nhwc_ref(const conv2d_nhwc_params& p, const float* in, const float* weights,
                             const float* bias, float* out);

/// Fast version, same contract.
void depthwise_conv_nhwc(const conv2d_nhwc_params& p, const float* in, const float* weights,
                         const float* bias, float* out);

/// CUDA (depthwise_conv_nhwc.cu): same contract, device pointers.
int depthwise_conv_nhwc_cuda(const conv2d_nhwc_params& p, const float* in, const float* weights,
                             const float* bias, float* out, cuda_stream s);

} // namespace comb::kernels
