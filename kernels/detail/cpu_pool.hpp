// comb::kernels::detail::cpu_pool: the one pool of worker threads behind every CPU op (the
// CPU backend's ops and the NHWC vision ops alike). Fork-join: parallel_range splits
// [0, n) into chunks of at least `grain` and runs fn(begin, end) on them; parallel_for
// runs fn(part) for part = 0..parts-1; both return when all is done, the caller taking a
// share. Threads: the CPUs the process may run on (its affinity), or COMB_KERNEL_THREADS from the environment, or
// set_cpu_threads() (the public knob is kernels::cpu_backend::set_threads). Workers spin
// briefly after a region (forward passes issue regions in quick succession), then sleep on
// a futex (std::atomic::wait); park_workers() sends them to sleep at once before OpenBLAS
// runs. Each worker is pinned to a CPU other than the caller's when the process may use
// enough CPUs (COMB_KERNEL_PIN=0: left to the scheduler; =wake: placed so only when woken). One region runs at a time (callers from several threads
// take turns), so it is thread-safe; a nested call from inside fn runs inline on the
// calling thread.
#pragma once

#include <cstdint>
#include <functional>

namespace comb::kernels::detail {

/// Threads the CPU ops use (>= 1).
int cpu_threads();

/// Sets the thread count (1: everything on the caller; <= 0: back to the default). Takes
/// effect on the next region.
void set_cpu_threads(int n);

/// Where the workers run, as COMB_KERNEL_PIN chose: "pinned off the caller's CPU",
/// "placed off the caller's CPU when woken" or "left to the scheduler".
const char* worker_placement();

/// Overrides COMB_KERNEL_PIN from now on ("0", "wake", anything else: pinned; nullptr: back
/// to the environment's choice); the next region makes a new pool when the placement
/// changed. For benchmarks that compare placements in one run; call between regions.
void set_worker_placement(const char* mode);

/// Sends idle workers to sleep now instead of after their spin: call before handing the
/// cores to another thread pool (OpenBLAS sgemm), whose threads the spinning would slow.
void park_workers();

/// Wakes sleeping workers ahead of a region that is about to come (a task arrived; its input
/// is still being prepared): each spins for up to `spin_us` microseconds, then sleeps again,
/// so the wake-up's latency overlaps the caller's serial work and the first region finds them
/// running. Does nothing when no worker sleeps, when a region runs, or with one thread.
void wake_workers(int spin_us = 2000);

/// Workers asleep on the futex now (for tests; 0 before the pool's first region).
int sleeping_workers();

/// Runs fn(begin, end) over [0, n) in chunks of >= grain elements.
void parallel_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

/// Runs fn(part) for part = 0..parts-1 across the pool; parts beyond the thread count are
/// taken in turn by whichever thread is free.
void parallel_for(int parts, const std::function<void(int)>& fn);

} // namespace comb::kernels::detail
