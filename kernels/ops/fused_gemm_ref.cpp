// Naive fused GEMM (tests only): a triple loop accumulating in double, then the epilogue in
// the order of fused_gemm.hpp (bias, residual, clamp).
#include "kernels/ops/fused_gemm.hpp"

#include <algorithm>

namespace comb::kernels {

void fused_gemm_ref(const float* a, int64_t m, int k, int64_t lda, const float* b, int n,
                    const gemm_epilogue& ep, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int kk = 0; kk < k; ++kk)
        acc += static_cast<double>(a[i * lda + kk]) * b[static_cast<int64_t>(kk) * n + j];
      float v = static_cast<float>(acc);
      if (ep.bias)
        v += ep.bias[j];
      if (ep.residual)
        v += ep.residual[i * ep.ldr + j];
      // max/min in this operand order keep a NaN (as the fast version's clamp does).
      c[i * ldc + j] = std::min(std::max(v, ep.lo), ep.hi);
    }
}

} // namespace comb::kernels
