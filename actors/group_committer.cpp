#include "actors/group_committer.hpp"

#include "base/errc.hpp"
#include "base/sync_point.hpp"
#include "storage/database.hpp"

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <thread>

namespace comb::actors {

namespace {

// The longest a flush waits for the rest of a group (see flush_atom).
constexpr auto max_wait = std::chrono::milliseconds{5};
// The shortest nap of a flush that waits for a group (otherwise an eighth of the last fsync).
constexpr auto min_nap = std::chrono::microseconds{20};

// COMB_GROUP_COMMIT_WAIT=off (read when the committer is spawned): a flush never waits for the
// rest of a group; it syncs whatever is pending as soon as the last fsync ended. perf_txn runs
// 64 sync clients both ways in turns.
bool waits_for_groups() {
  const char* v = std::getenv("COMB_GROUP_COMMIT_WAIT");
  return !(v && std::string_view{v} == "off");
}

} // namespace

committer_actor::behavior_type group_committer(
  committer_actor::stateful_pointer<committer_state> self, storage::database* db) {
  const bool wait_for_groups = waits_for_groups();
  return {
    [=](sync_atom, nlohmann::json& result) -> caf::typed_response_promise<nlohmann::json> {
      auto rp = self->make_response_promise<nlohmann::json>();
      auto& st = self->state;
      st.pending.emplace_back(rp, std::move(result));
      // While a flush waits for the rest of a group (see flush_atom), its flush message is
      // already on its way.
      if (!st.flush_scheduled) {
        // The flush message queues behind every sync request already in the mailbox,
        // so all of them share the next fsync.
        st.flush_scheduled = true;
        self->send(self, flush_atom::value);
      }
      return rp;
    },
    [=](flush_atom) {
      auto& st = self->state;
      st.flush_scheduled = false;
      if (st.pending.empty())
        return; // a timer whose group went out already
      // The replies of the last group went out just before the fsync ended; their clients'
      // next commits are on their way through the state actors. Wait for them rather than
      // sync a small first part of them alone, for at most as long as the last fsync took:
      // no longer than that small fsync would have held the rest back. The commit that
      // completes the group, or the end of the wait, sends the flush (below).
      // One client: its one commit is the whole group, no wait.
      auto now = std::chrono::steady_clock::now();
      if (wait_for_groups && st.pending.size() < st.expected && now < st.wait_until) {
        // Nap in this handler rather than block on the mailbox: a detached actor blocked on
        // an empty mailbox is woken by every message (the sender signals a condition
        // variable, this thread switches in and out), which cost each commit of the group
        // a wake-up. While it naps, commits queue without waking it. After each nap it
        // looks at how many wait in the mailbox, and when the group is complete or the
        // wait is over it sends itself the flush that follows them.
        auto nap = std::max<std::chrono::steady_clock::duration>(st.last_sync / 8, min_nap);
        for (;;) {
          std::this_thread::sleep_for(std::min(nap, st.wait_until - now));
          now = std::chrono::steady_clock::now();
          if (now >= st.wait_until || st.pending.size() + self->mailbox().size() >= st.expected)
            break;
        }
        st.flush_scheduled = true;
        self->send(self, flush_atom::value);
        st.wait_until = now; // the commits queued are the group: no second wait for them
        return;
      }
      auto batch = std::move(st.pending);
      st.pending.clear();
      COMB_SYNC_POINT("group_commit.before_sync");
      auto t0 = std::chrono::steady_clock::now();
      auto err = db->sync_group();
      auto t1 = std::chrono::steady_clock::now();
      st.expected = batch.size();
      st.last_sync = t1 - t0;
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
