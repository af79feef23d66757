// CUDA dense NHWC convolution: the HWIO -> OHWI filter transpose (a hand-written kernel)
// and the convolution through cuDNN (cuda::detail::conv2d_device), then bias and clamp
// (bias_act_cuda); see conv2d_nhwc.hpp and kernels/cuda/cuda_detail.hpp. Tested against
// conv2d_nhwc_ref (tests/kernels/cuda_vision_test.cpp).
#include "kernels/ops/conv2d_nhwc.hpp"

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_detail.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/ops/bias_act.hpp"

#include <cuda_runtime_api.h>
#if COMB_HAVE_CUDNN
#  include <cudnn.h>
#endif

namespace comb::kernels {

namespace {

__global__ void hwio_to_ohwi_kernel(const float* hwio, int khw, int cin, int cout, float* ohwi) {
  int64_t total = int64_t{khw} * cin * cout;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * blockDim.x) {
    int co = static_cast<int>(i % cout);
    int64_t r = i / cout;
    int ci = static_cast<int>(r % cin);
    int s = static_cast<int>(r / cin);
    ohwi[(int64_t{co} * khw + s) * cin + ci] = hwio[i];
  }
}

} // namespace

int hwio_to_ohwi_cuda(const float* hwio, int khw, int cin, int cout, float* ohwi, cuda_stream s) {
  hwio_to_ohwi_kernel<<<cuda::detail::grid_for(int64_t{khw} * cin * cout, 256), 256, 0, s>>>(
    hwio, khw, cin, cout, ohwi);
  return cudaGetLastError();
}

namespace cuda::detail {

caf::error conv2d_device(const conv2d_nhwc_params& p, int cout, const float* in, const float* hwio,
                         const float* bias, float* out) {
#if COMB_HAVE_CUDNN
  cudnnHandle_t dnn = nullptr;
  if (auto err = dnn_handle(dnn))
    return err;
  // RAII for the descriptors.
  struct descs {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t f = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    ~descs() {
      if (x)
        (void) cudnnDestroyTensorDescriptor(x);
      if (y)
        (void) cudnnDestroyTensorDescriptor(y);
      if (f)
        (void) cudnnDestroyFilterDescriptor(f);
      if (conv)
        (void) cudnnDestroyConvolutionDescriptor(conv);
    }
  } d;
  COMB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.x));
  COMB_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d.y));
  COMB_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d.f));
  COMB_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d.conv));
  COMB_CUDNN_CHECK(
    cudnnSetTensor4dDescriptor(d.x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, p.n, p.c, p.h, p.w));
  COMB_CUDNN_CHECK(
    cudnnSetFilter4dDescriptor(d.f, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, cout, p.c, p.kh, p.kw));
  COMB_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d.conv, p.pad_top, p.pad_left, p.stride_h,
                                                   p.stride_w, 1, 1, CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
  // Plain float FMA: by default cuDNN may use TF32 tensor cores on Ampere and later, whose
  // 10-bit mantissa puts results ~1e-3 away from the float reference.
  COMB_CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv, CUDNN_FMA_MATH));
  int on, oc, oh, ow;
  COMB_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(d.conv, d.x, d.f, &on, &oc, &oh, &ow));
  if (oh != p.out_h || ow != p.out_w)
    return make_error(errc::unsupported,
                      "cuda conv2d_nhwc: cuDNN pads symmetrically; these parameters need "
                      "asymmetric padding (use the CPU backend)");
  COMB_CUDNN_CHECK(
    cudnnSetTensor4dDescriptor(d.y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, p.n, cout, oh, ow));
  cudnnConvolutionFwdAlgoPerf_t perf[8];
  int found = 0;
  COMB_CUDNN_CHECK(
    cudnnGetConvolutionForwardAlgorithm_v7(dnn, d.x, d.f, d.conv, d.y, 8, &found, perf));
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  for (int i = 0; i < found; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) {
      algo = perf[i].algo;
      break;
    }
  size_t ws_bytes = 0;
  COMB_CUDNN_CHECK(
    cudnnGetConvolutionForwardWorkspaceSize(dnn, d.x, d.f, d.conv, d.y, algo, &ws_bytes));
  // HWIO -> OHWI, cuDNN's NHWC filter layout, on the device.
  device_buffer dfilt, dws;
  if (auto err = alloc(dfilt, static_cast<size_t>(p.kh) * p.kw * p.c * cout * sizeof(float)))
    return err;
  COMB_CUDA_CHECK(hwio_to_ohwi_cuda(hwio, p.kh * p.kw, p.c, cout, dfilt.as<float>(), nullptr));
  if (auto err = alloc(dws, ws_bytes))
    return err;
  const float one = 1.0f, zero = 0.0f;
  COMB_CUDNN_CHECK(cudnnConvolutionForward(dnn, &one, d.x, in, d.f, dfilt.ptr, d.conv, algo,
                                           dws.ptr, ws_bytes, &zero, d.y, out));
  COMB_CUDA_CHECK(
    bias_act_cuda(out, bias, static_cast<int64_t>(p.n) * oh * ow, cout, p.lo, p.hi, nullptr));
  return caf::none;
#else
  (void) p, (void) cout, (void) in, (void) hwio, (void) bias, (void) out;
  return make_error(errc::unsupported, "cuda conv2d_nhwc: this build has no cuDNN");
#endif
}

} // namespace cuda::detail

} // namespace comb::kernels
