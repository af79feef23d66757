// comb::actors::group_committer: makes commits durable in groups. State actors commit without
// fsync and hand the reply to this actor; it collects every reply that arrives before its next
// flush, runs one fsync of the WAL for all of them, and only then delivers them. A commit is
// therefore acknowledged only after the WAL holding it is on disk, and concurrent commits share
// one fsync. After a group of n, the next flush waits (at most as long as that fsync took) until
// n commits are pending: the clients just answered send theirs next, and without the wait the
// first few of them would take a small fsync of their own while the rest queue behind it. The
// flush naps while it waits (a blocked mailbox would wake the thread for each commit) and
// goes once the mailbox holds the rest of the group or the wait is over. Runs detached (fsync
// blocks). The database must outlive the actor.
#pragma once

#include "runtime/interfaces.hpp"

#include <chrono>
#include <utility>
#include <vector>

namespace comb::storage {
class database;
} // namespace comb::storage

namespace comb::actors {

struct committer_state {
  std::vector<std::pair<caf::typed_response_promise<nlohmann::json>, nlohmann::json>> pending;
  /// A flush message is on its way (sent by sync_atom, or by a flush that waited).
  bool flush_scheduled = false;
  /// The size of the last group: about as many commits follow it (their clients' next ones).
  size_t expected = 0;
  /// Until when a flush waits for them: the end of the last fsync plus its duration.
  std::chrono::steady_clock::time_point wait_until;
  /// How long the last fsync took.
  std::chrono::steady_clock::duration last_sync{};
  uint64_t flushes = 0;
  uint64_t commits = 0;
  static inline const char* name = "group_committer";
};

/// The committer's behavior; spawn it detached: `sys.spawn<caf::detached>(group_committer, db)`.
committer_actor::behavior_type group_committer(
  committer_actor::stateful_pointer<committer_state> self, storage::database* db);

} // namespace comb::actors
