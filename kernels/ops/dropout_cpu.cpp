// Fast dropout: the counter-based mask lets threads draw their own ranges independently.
#include "kernels/ops/dropout.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

namespace comb::kernels {

void dropout_cpu(const float* x, int64_t n, float p, uint64_t seed, float* y, uint8_t* mask) {
  float scale = 1.0f / (1.0f - p);
  detail::parallel_range(n, 8192, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      bool keep = dropout_keep(seed, static_cast<uint64_t>(i), p);
      mask[i] = keep ? 1 : 0;
      y[i] = keep ? x[i] * scale : 0.0f;
    }
  });
}

void dropout_backward_cpu(const float* dy, const uint8_t* mask, int64_t n, float p, float* dx) {
  float scale = 1.0f / (1.0f - p);
  detail::parallel_range(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      dx[i] = mask[i] ? dy[i] * scale : 0.0f;
  });
}

} // namespace comb::kernels
