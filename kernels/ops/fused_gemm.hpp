// comb::kernels::fused_gemm: C[m x n] = act(A[m x k] * B[k x n] + bias + residual), the
// workhorse of Comb's NHWC vision models (1x1 convolutions, im2col convolutions, dense
// layers), with the bias, the residual add and the ReLU/ReLU6 clamp fused into the store.
// B is packed once (packed_gemm_b, owned by the layer that holds the weights). A plain
// reference (fused_gemm_ref.cpp) and a fast version (fused_gemm_cpu.cpp: AVX-512
// micro-kernel chosen at run time, portable fallback otherwise; split across the CPU pool)
// sit side by side. Both are pure functions of their arguments and thread-safe.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace comb::kernels {

/// What happens to each output element after the product.
struct gemm_epilogue {
  /// n floats added per column, or nullptr.
  const float* bias = nullptr;
  /// m x n values added element-wise (leading dimension ldr), or nullptr.
  const float* residual = nullptr;
  int64_t ldr = 0;
  /// Output clamp: lo = 0 gives ReLU, [0, 6] ReLU6, the defaults leave values alone.
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
};

/// B (k x n, row-major) repacked into column panels of gemm_panel floats, zero-padded.
struct packed_gemm_b {
  int k = 0;
  int n = 0;
  std::vector<float> data;
};

/// Width of a packed column panel.
constexpr int gemm_panel = 32;

/// Packs row-major B (k x n).
packed_gemm_b pack_gemm_b(const float* b, int k, int n);

/// Plain reference (fused_gemm_ref.cpp, linked by tests only): triple loop, then the
/// epilogue. A is m x k (lda), B row-major k x n (not packed).
void fused_gemm_ref(const float* a, int64_t m, int k, int64_t lda, const float* b, int n,
                    const gemm_epilogue& ep, float* c, int64_t ldc);

/// Fast version over a packed B; splits rows (or panels, for short A) across threads.
void fused_gemm(const float* a, int64_t m, int64_t lda, const packed_gemm_b& b,
                const gemm_epilogue& ep, float* c, int64_t ldc);

/// True when the AVX-512 micro-kernel is in use on this machine.
bool fused_gemm_uses_avx512();

} // namespace comb::kernels
