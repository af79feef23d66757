// comb::actors::group_committer: makes commits durable in groups. State actors commit without
// fsync and hand the reply to this actor; it collects every reply that arrives before its next
// flush, runs one fsync of the WAL for all of them, and only then delivers them. A commit is
// therefore acknowledged only after the WAL holding it is on disk, and concurrent commits share
// one fsync. Runs detached (fsync blocks). The database must outlive the actor.
#pragma once

#include "runtime/interfaces.hpp"

#include <utility>
#include <vector>

namespace comb::storage {
class database;
} // namespace comb::storage

namespace comb::actors {

struct committer_state {
  std::vector<std::pair<caf::typed_response_promise<nlohmann::json>, nlohmann::json>> pending;
  bool flush_scheduled = false;
  uint64_t flushes = 0;
  uint64_t commits = 0;
  static inline const char* name = "group_committer";
};

/// The committer's behavior; spawn it detached: `sys.spawn<caf::detached>(group_committer, db)`.
committer_actor::behavior_type group_committer(
  committer_actor::stateful_pointer<committer_state> self, storage::database* db);

} // namespace comb::actors
