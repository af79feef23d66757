// comb::kernels::detail::scratch: per-thread, 64-byte aligned float buffers grown on demand.
#include "kernels/detail/scratch.hpp"

#include <cstdlib>
#include <new>

namespace comb::kernels::detail {

float* scratch(size_t floats, int slot) {
  struct buf {
    float* p = nullptr;
    size_t n = 0;
    ~buf() { std::free(p); }
  };
  thread_local buf bufs[4];
  auto& b = bufs[slot & 3];
  if (b.n < floats) {
    std::free(b.p);
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    b.p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!b.p)
      throw std::bad_alloc{};
    b.n = floats;
  }
  return b.p;
}

} // namespace comb::kernels::detail
