// comb::kernels::cpu_backend: the always-present backend. Multi-threaded (detail::cpu_pool),
// OpenBLAS sgemm for GEMM-shaped work (dense, conv1d, conv2d), vectorised fused loops for
// the rest (the _cpu functions under kernels/ops/). One instance lives in the registry
// (kernels::cpu()); thread-safe.
#pragma once

#include "kernels/detail/host_backend.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace comb::kernels {

class cpu_backend : public detail::host_backend {
public:
  cpu_backend();

  /// Threads used by the fast CPU ops (the backend's and the NHWC vision ops', one pool)
  /// and by OpenBLAS.
  static int threads();

  /// Sets both (1: single-threaded; <= 0: the default, COMB_KERNEL_THREADS or every core).
  static void set_threads(int n);

  /// Whether sgemm runs as parts on the pool, each a single-threaded OpenBLAS call
  /// (kernels/detail/blas.hpp: for a process that shares its cores with another busy one).
  static bool sgemm_split();

  /// Turns that on or off (also COMB_SGEMM_SPLIT=1|0 in the environment); call between ops.
  static void set_sgemm_split(bool on);

  /// Name of the BLAS in use and its core type, e.g. "OpenBLAS 0.3.21 (SkylakeX, pthreads)".
  static std::string blas_info();

  /// Threads of the CPU pool and where its workers run, e.g. "2 threads, workers pinned off
  /// the caller's CPU".
  static std::string pool_info();

  /// Overrides COMB_KERNEL_PIN from now on ("0", "wake", anything else: pinned; nullptr: back
  /// to the environment's choice); takes effect on the next region. For benchmarks that
  /// compare placements in one run; call between ops.
  static void set_worker_placement(const char* mode);

  /// Wakes the pool's sleeping workers ahead of a region (they spin for `spin_us`, then sleep
  /// again): for a caller about to run ops after a quiet spell (detail::wake_workers).
  static void wake_workers(int spin_us = 2000);

  /// Runs fn(begin, end) over [0, n) in chunks of at least `grain` on the pool, the caller
  /// taking part (detail::parallel_range): for work beside the ops, such as input conversion.
  static void parallel_range(int64_t n, int64_t grain,
                             const std::function<void(int64_t, int64_t)>& fn);
};

} // namespace comb::kernels
