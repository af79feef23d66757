// comb::runtime::stage_trace: timestamps of the serving path's stages (commit hook,
// dispatcher, function actor, compute actor, executor, the reply's way back), for measuring
// where one invocation's time goes across threads and processes. Off unless the environment
// variable COMB_STAGE_TRACE names a file prefix: each process then writes up to 256k marks
// into PREFIX.<pid>, a file mapped shared (a lock-free append: one relaxed atomic add, a
// clock read and a 40-byte store a mark), so the marks survive a SIGKILL (perf_serving ends
// its compute child so). A mark is {steady ns, id: u64; thread id: u32; stage: char[20]},
// little-endian; a mark whose timestamp is zero is unused. The steady clock is
// CLOCK_MONOTONIC, shared by the processes of one host, so the files of a node and its
// compute process merge by time (scripts/stage_trace.py). Thread-safe.
#pragma once

#include <cstdint>

namespace comb::runtime::stage_trace {

/// True when COMB_STAGE_TRACE is set (read once).
bool on() noexcept;

/// Records `stage` (its first 19 characters) with `id` (a task id, or 0) now, on this
/// thread; nothing when off.
void mark(const char* stage, uint64_t id = 0) noexcept;

} // namespace comb::runtime::stage_trace
