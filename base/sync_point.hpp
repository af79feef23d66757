// COMB_SYNC_POINT(name): a named point in the code where a crash test can kill the process.
// When the build defines COMB_SYNC_POINTS and the environment says COMB_KILL_AT=<name> (and
// optionally COMB_KILL_AFTER=<n>, default 1), the n-th time the point is reached the process
// kills itself with SIGKILL, exactly there (COMB_KILL_SIGNAL=<number>: sends itself that signal
// once instead, e.g. 15 for a SIGTERM that comes exactly there). Without COMB_SYNC_POINTS the
// macro compiles away (RocksDB's TEST_KILL_RANDOM / sync points). COMB_SYNC_ARMED(name) is
// true when the environment arms `name` (false without COMB_SYNC_POINTS), for code that must
// take another path to reach its point (a write cut in two, to leave a torn frame).
// Thread-safe.
// The points, and what a kill there leaves behind (tests/crash/ kills at each one):
//   commit.before          a transaction took its lsn, not committed: nothing of it stays
//   commit.before_reply    committed and handed to the log writer, the client not answered
//   group_commit.before_sync   committed to the WAL, not synced, nobody answered
//   group_commit.before_ack    synced, nobody answered
//   provenance.after_commit    committed, its record not yet queued for the log
//   log.torn_write         half of a batch of frames written to the segment
//   log.before_sync        a batch written to the segment, not yet fdatasync'ed
//   log.new_segment        a new segment holds its header only
//   spool.after_pass       the SQL store committed a pass of the spooler
//   outbox.after_commit    an outbox call committed, the dispatcher not told of it
//   dispatcher.after_send  a call handed to a function actor (maybe sent to compute)
//   dispatcher.before_apply    the compute process ran a call, its result not applied
//   outbox.result_before_commit  a result procedure ran, its transaction not committed
// and where tests/node/stop_signal_test.cpp sends a node SIGTERM (it must stop cleanly):
//   node.start.begin       `comb node` parsed its flags, its config not read yet
//   node.start.recovery    a node is about to open (and recover) its database and log
#pragma once

#ifdef COMB_SYNC_POINTS

namespace comb {
/// Kills the process when `name` is the armed sync point and its count is reached.
void sync_point(const char* name);
/// True when `name` is the armed sync point.
bool sync_point_armed(const char* name);
} // namespace comb

#  define COMB_SYNC_POINT(name) ::comb::sync_point(name)
#  define COMB_SYNC_ARMED(name) ::comb::sync_point_armed(name)
#else
#  define COMB_SYNC_POINT(name) ((void) 0)
#  define COMB_SYNC_ARMED(name) false
#endif
