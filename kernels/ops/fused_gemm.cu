// CUDA GEMM: row-major C = A B through cuBLAS sgemm on device pointers
// (cuda::detail::gemm_device; the epilogue runs as bias_act_cuda); see fused_gemm.hpp and
// kernels/cuda/cuda_detail.hpp. Tested against fused_gemm_ref
// (tests/kernels/cuda_vision_test.cpp).
#include "kernels/ops/fused_gemm.hpp"

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_detail.hpp"

#include <cublas_v2.h>

namespace comb::kernels::cuda::detail {

caf::error gemm_device(const float* a, const float* b, int64_t m, int k, int n, float* c) {
  cublasHandle_t h = nullptr;
  if (auto err = blas_handle(h))
    return err;
  const float one = 1.0f, zero = 0.0f;
  // Row-major C = A B is column-major C^T = B^T A^T.
  COMB_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, static_cast<int>(m), k, &one, b, n,
                                a, k, &zero, c, n));
  return caf::none;
}

} // namespace comb::kernels::cuda::detail
