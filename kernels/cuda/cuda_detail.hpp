// Device-pointer cores of the CUDA backend shared by the host-pointer API (cuda_backend.cpp)
// and the tensor backend (cuda_tensor_backend.cpp): cuBLAS GEMM and cuDNN convolution on
// memory already on the device. Internal to kernels/cuda; thread-safe (per-thread handles).
#pragma once

#include "kernels/ops/depthwise_conv_nhwc.hpp"

#include <caf/error.hpp>

#include <cstdint>

namespace comb::kernels::cuda::detail {

/// Row-major C[m][n] = A[m][k] B[k][n] through cuBLAS; device pointers.
caf::error gemm_device(const float* a, const float* b, int64_t m, int k, int n, float* c);

/// NHWC convolution through cuDNN, weights HWIO on the device, then bias (may be nullptr)
/// and the clamp p.lo..p.hi; errc::unsupported without cuDNN or for asymmetric padding.
caf::error conv2d_device(const conv2d_nhwc_params& p, int cout, const float* in,
                         const float* hwio, const float* bias, float* out);

} // namespace comb::kernels::cuda::detail
