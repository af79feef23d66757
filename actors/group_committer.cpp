#include "actors/group_committer.hpp"

#include "base/errc.hpp"
#include "base/sync_point.hpp"
#include "storage/database.hpp"

namespace comb::actors {

committer_actor::behavior_type group_committer(
  committer_actor::stateful_pointer<committer_state> self, storage::database* db) {
  return {
    [=](sync_atom, nlohmann::json& result) -> caf::typed_response_promise<nlohmann::json> {
      auto rp = self->make_response_promise<nlohmann::json>();
      self->state.pending.emplace_back(rp, std::move(result));
      if (!self->state.flush_scheduled) {
        // The flush message queues behind every sync request already in the mailbox,
        // so all of them share the next fsync.
        self->state.flush_scheduled = true;
        self->send(self, flush_atom::value);
      }
      return rp;
    },
    [=](flush_atom) {
      auto batch = std::move(self->state.pending);
      self->state.pending.clear();
      self->state.flush_scheduled = false;
      COMB_SYNC_POINT("group_commit.before_sync");
      auto err = db->sync_group();
      COMB_SYNC_POINT("group_commit.before_ack");
      ++self->state.flushes;
      self->state.commits += batch.size();
      for (auto& [rp, value] : batch) {
        if (err)
          rp.deliver(err);
        else
          rp.deliver(std::move(value));
      }
    },
  };
}

} // namespace comb::actors
