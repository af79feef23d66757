// Check macros for CUDA runtime, cuBLAS and cuDNN calls inside kernels/cuda: on failure they
// return a caf::error (errc::unavailable) naming the call, its status, file and line, so the
// caller can fall back to the CPU backend; nothing exits. Internal to kernels/cuda.
#pragma once

#include "base/errc.hpp"

#include <cuda_runtime_api.h>

#include <string>

namespace comb::kernels::cuda::detail {

inline caf::error failure(const char* api, const std::string& status, const char* expr,
                          const char* file, int line) {
  return make_error(errc::unavailable, std::string(api) + " call " + expr + " failed: " + status
                                         + " at " + file + ":" + std::to_string(line));
}

} // namespace comb::kernels::cuda::detail

#define COMB_CUDA_CHECK(expr)                                                                      \
  do {                                                                                             \
    /* the ops' <op>_cuda launchers return their cudaError_t as an int */                          \
    cudaError_t comb_status_ = static_cast<cudaError_t>(expr);                                     \
    if (comb_status_ != cudaSuccess)                                                               \
      return ::comb::kernels::cuda::detail::failure("CUDA", cudaGetErrorString(comb_status_),      \
                                                    #expr, __FILE__, __LINE__);                    \
  } while (false)

#define COMB_CUBLAS_CHECK(expr)                                                                    \
  do {                                                                                             \
    cublasStatus_t comb_status_ = (expr);                                                          \
    if (comb_status_ != CUBLAS_STATUS_SUCCESS)                                                     \
      return ::comb::kernels::cuda::detail::failure(                                               \
        "cuBLAS", "status " + std::to_string(static_cast<int>(comb_status_)), #expr, __FILE__,     \
        __LINE__);                                                                                 \
  } while (false)

#define COMB_CUDNN_CHECK(expr)                                                                     \
  do {                                                                                             \
    cudnnStatus_t comb_status_ = (expr);                                                           \
    if (comb_status_ != CUDNN_STATUS_SUCCESS)                                                      \
      return ::comb::kernels::cuda::detail::failure("cuDNN", cudnnGetErrorString(comb_status_),    \
                                                    #expr, __FILE__, __LINE__);                    \
  } while (false)
