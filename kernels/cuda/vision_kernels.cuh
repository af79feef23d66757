// Launchers for Comb's hand-written CUDA kernels (vision_kernels.cu). Device pointers in,
// the launch status out (cudaGetLastError after the launch); no CAF in nvcc's view.
// Internal to kernels/cuda; called from cuda_backend.cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace comb::kernels::cuda::detail {

/// Geometry of a depthwise NHWC convolution (mirrors conv2d_nhwc_params).
struct dw_geometry {
  int n, h, w, c, kh, kw, stride_h, stride_w, pad_top, pad_left, out_h, out_w;
  float lo, hi;
};

cudaError_t launch_bias_act(float* x, const float* bias, int64_t rows, int cols, float lo,
                            float hi, cudaStream_t s);
cudaError_t launch_softmax(const float* x, int64_t rows, int cols, float* out, cudaStream_t s);
/// Writes 1 into *bad when an id is out of range (the row is zero-filled).
cudaError_t launch_embedding(const int32_t* ids, int64_t n, const float* table, int vocab,
                             int dim, float* out, int* bad, cudaStream_t s);
/// First maximum over t < valid; argmax (may be nullptr) receives its t.
cudaError_t launch_max_over_time(const float* x, int batch, int time, int valid, int channels,
                                 float* out, int32_t* argmax, cudaStream_t s);
/// HWIO [khw][cin][cout] -> OHWI [cout][khw][cin] (cuDNN's NHWC filter layout).
cudaError_t launch_hwio_to_ohwi(const float* hwio, int khw, int cin, int cout, float* ohwi,
                                cudaStream_t s);
/// y = a + b, n elements.
cudaError_t launch_add(const float* a, const float* b, int64_t n, float* y, cudaStream_t s);
cudaError_t launch_depthwise_nhwc(const dw_geometry& g, const float* in, const float* w,
                                  const float* bias, float* out, cudaStream_t s);

} // namespace comb::kernels::cuda::detail
