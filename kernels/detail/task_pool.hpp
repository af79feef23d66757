// comb::kernels::detail::task_pool: a small fixed pool of worker threads that runs
// `fn(part)` for part = 0..parts-1 and returns when all parts are done (fork-join).
// Used by the NHWC vision ops (fused_gemm, depthwise_conv_nhwc, conv2d_nhwc). The caller
// runs part 0 itself; workers spin briefly, then sleep on a futex (std::atomic::wait).
// One fork-join at a time: run() is serialised by a mutex, so it is thread-safe, but
// callers from many threads take turns. Not re-entrant from inside `fn`.
#pragma once

#include <functional>

namespace comb::kernels::detail {

/// Number of threads the vision ops use (defaults to std::thread::hardware_concurrency()).
int vision_threads();

/// Sets the number of threads (1 = run on the caller only). Takes effect on the next run.
void set_vision_threads(int n);

/// Runs fn(0..parts-1) across the pool; parts beyond the thread count are taken in turn.
void parallel_for(int parts, const std::function<void(int)>& fn);

} // namespace comb::kernels::detail
