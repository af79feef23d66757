// Pieces of the CUDA backend shared by the host-pointer API (cuda_backend.cpp), the tensor
// backend (cuda_tensor_backend.cpp) and the ops' CUDA files (kernels/ops/<op>.cu): device
// buffers, the per-thread cuBLAS/cuDNN handles, and the library-backed device-pointer
// cores (cuBLAS GEMM in ops/fused_gemm.cu, cuDNN convolution in ops/conv2d_nhwc.cu).
// Internal to kernels; thread-safe (per-thread handles).
#pragma once

#include "kernels/ops/depthwise_conv_nhwc.hpp"

#include <caf/error.hpp>

#include <cstddef>
#include <cstdint>

// The structs behind cublasHandle_t and cudnnHandle_t.
struct cublasContext;
struct cudnnContext;

namespace comb::kernels::cuda::detail {

/// A device allocation freed on scope exit.
struct device_buffer {
  void* ptr = nullptr;
  device_buffer() = default;
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer();
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

/// cudaMalloc of `bytes` (at least 1) into m.
caf::error alloc(device_buffer& m, size_t bytes);

/// This thread's cuBLAS handle, created on first use.
caf::error blas_handle(cublasContext*& out);

/// This thread's cuDNN handle, created on first use; errc::unsupported without cuDNN.
caf::error dnn_handle(cudnnContext*& out);

/// Row-major C[m][n] = A[m][k] B[k][n] through cuBLAS; device pointers.
caf::error gemm_device(const float* a, const float* b, int64_t m, int k, int n, float* c);

/// NHWC convolution through cuDNN, weights HWIO on the device, then bias (may be nullptr)
/// and the clamp p.lo..p.hi; errc::unsupported without cuDNN or for asymmetric padding.
caf::error conv2d_device(const conv2d_nhwc_params& p, int cout, const float* in, const float* hwio,
                         const float* bias, float* out);

} // namespace comb::kernels::cuda::detail
