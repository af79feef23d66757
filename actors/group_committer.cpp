#include "actors/group_committer.hpp"

#include "base/errc.hpp"
#include "base/sync_point.hpp"
#include "storage/database.hpp"

#include <algorithm>
#include <thread>

namespace comb::actors {

namespace {

// The longest a flush waits for the rest of a group (see flush_atom).
constexpr auto max_wait = std::chrono::milliseconds{5};

} // namespace

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
      auto& st = self->state;
      // The replies of the last group went out just before the fsync ended; their clients'
      // next commits are on their way through the state actors. Wait for them (each hand
      // over their commit behind this flush) rather than sync a small first part of them
      // alone, for at most as long as the last fsync took: no longer than that small fsync
      // would have held the rest back. One client: its one commit is the whole group, no
      // wait.
      if (st.pending.size() < st.expected && std::chrono::steady_clock::now() < st.wait_until) {
        std::this_thread::sleep_for(std::chrono::microseconds{20});
        self->send(self, flush_atom::value); // behind the commits that arrived meanwhile
        return;
      }
      auto batch = std::move(self->state.pending);
      self->state.pending.clear();
      self->state.flush_scheduled = false;
      COMB_SYNC_POINT("group_commit.before_sync");
      auto t0 = std::chrono::steady_clock::now();
      auto err = db->sync_group();
      auto t1 = std::chrono::steady_clock::now();
      st.expected = batch.size();
      st.wait_until = t1 + std::min<std::chrono::steady_clock::duration>(t1 - t0, max_wait);
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
