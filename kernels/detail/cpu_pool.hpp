// comb::kernels::detail::cpu_pool: the CPU backend's worker threads. parallel_range splits
// [0, n) into chunks of at least `grain` and runs fn(begin, end) on them, the caller taking
// a share, and returns when all are done (fork-join). Threads: hardware_concurrency, or
// COMB_KERNEL_THREADS from the environment, or set_cpu_threads(). One region runs at a time
// (a mutex serialises callers), so it is thread-safe; a nested call from inside fn runs
// inline on the calling thread.
#pragma once

#include <cstdint>
#include <functional>

namespace comb::kernels::detail {

/// Threads the CPU backend uses (>= 1).
int cpu_threads();

/// Sets the thread count (1: everything on the caller). Takes effect on the next region.
void set_cpu_threads(int n);

/// Runs fn(begin, end) over [0, n) in chunks of >= grain elements.
void parallel_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

} // namespace comb::kernels::detail
