// Fast max over time: sequences split across threads, channels vectorised (each time step
// is one contiguous row of c floats).
#include "kernels/ops/max_over_time.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <cstring>

namespace comb::kernels {

namespace {

COMB_CLONES
void one_sequence(const float* x, int64_t c, int64_t valid, float* y, int32_t* argmax) {
  std::memcpy(y, x, static_cast<size_t>(c) * sizeof(float));
  for (int64_t j = 0; j < c; ++j)
    argmax[j] = 0;
  for (int64_t s = 1; s < valid; ++s) {
    const float* row = x + s * c;
    for (int64_t j = 0; j < c; ++j) {
      bool gt = row[j] > y[j];
      y[j] = gt ? row[j] : y[j];
      argmax[j] = gt ? static_cast<int32_t>(s) : argmax[j];
    }
  }
}

} // namespace

void max_over_time_cpu(const float* x, int64_t b, int64_t t, int64_t c, int64_t valid, float* y,
                       int32_t* argmax) {
  detail::parallel_range(b, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i)
      one_sequence(x + i * t * c, c, valid, y + i * c, argmax + i * c);
  });
}

void max_over_time_backward_cpu(const float* dy, const int32_t* argmax, int64_t b, int64_t t,
                                int64_t c, float* dx) {
  detail::parallel_range(b, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i) {
      std::memset(dx + i * t * c, 0, static_cast<size_t>(t * c) * sizeof(float));
      for (int64_t j = 0; j < c; ++j)
        dx[(i * t + argmax[i * c + j]) * c + j] += dy[i * c + j];
    }
  });
}

} // namespace comb::kernels
