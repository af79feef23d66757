// COMB_SYNC_POINT(name): a named point in the code where a crash test can kill the process.
// When the build defines COMB_SYNC_POINTS and the environment says COMB_KILL_AT=<name> (and
// optionally COMB_KILL_AFTER=<n>, default 1), the n-th time the point is reached the process
// kills itself with SIGKILL, exactly there. Without COMB_SYNC_POINTS the macro compiles away
// (RocksDB's TEST_KILL_RANDOM / sync points). Thread-safe.
#pragma once

#ifdef COMB_SYNC_POINTS

namespace comb {
/// Kills the process when `name` is the armed sync point and its count is reached.
void sync_point(const char* name);
} // namespace comb

#  define COMB_SYNC_POINT(name) ::comb::sync_point(name)
#else
#  define COMB_SYNC_POINT(name) ((void) 0)
#endif
