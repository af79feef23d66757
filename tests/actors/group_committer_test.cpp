// Tests for the group committer: concurrent sync commits are acknowledged together after one
// fsync, and a group that stays shorter than the last one is still acknowledged (its wait
// ends when its time is over, not on commits that never come); with COMB_GROUP_COMMIT_WAIT=off the same
// commits are acknowledged without the wait.
#include "actors/group_committer.hpp"

#include "runtime/atoms.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>

using namespace comb;
using nlohmann::json;

namespace {

// Single commits, a group of 16 in one mailbox visit, then groups of 2 and 1 after it: every
// commit is acknowledged with its own value.
void commit_rounds() {
  test::temp_dir dir;
  storage::options opts;
  opts.mode = storage::durability::sync;
  auto db = test::must(storage::database::open(dir.path(), opts));
  REQUIRE(!db->create_table("rows"));
  runtime::system_config cfg{2};
  caf::actor_system sys{cfg};
  auto committer = sys.spawn<caf::detached>(actors::group_committer, db.get());
  caf::scoped_actor self{sys};
  // Each round: `n` commits handed over at once, each answered with its own value.
  auto round = [&](int n, int tag) {
    for (int i = 0; i < n; ++i) {
      auto txn = db->begin(/*group_sync=*/true);
      REQUIRE(!txn->put("rows", std::to_string(tag) + "-" + std::to_string(i), "v"));
      REQUIRE(!txn->commit());
    }
    int answered = 0;
    for (int i = 0; i < n; ++i)
      self->request(committer, std::chrono::seconds{10}, sync_atom::value, json{{"i", i}})
        .receive(
          [&](json& v) {
            CHECK(v["i"] == i);
            ++answered;
          },
          [&](caf::error& e) { FAIL("sync request failed: " << to_string(e)); });
    CHECK(answered == n);
  };
  round(1, 0); // one commit: a group of one
  round(1, 1);
  // The requests above went one at a time; now a group of 16 goes in one mailbox visit.
  std::vector<json> replies;
  auto untyped = caf::actor_cast<caf::actor>(committer);
  for (int i = 0; i < 16; ++i)
    self->send(untyped, sync_atom::value, json{{"i", i}});
  for (int i = 0; i < 16; ++i)
    self->receive([&](json& v) { replies.push_back(v); },
                  caf::after(std::chrono::seconds{10}) >> [&] { FAIL("no reply"); });
  CHECK(replies.size() == 16);
  // After a group of 16 the committer waits for 16 more; only 2 come: the wait ends and
  // they are acknowledged.
  round(2, 2);
  round(1, 3);
  self->send_exit(committer, caf::exit_reason::user_shutdown);
}

} // namespace

TEST_SUITE("actors.group_committer") {
  TEST_CASE("a full group is acknowledged at once; a short group when its wait ends") {
    commit_rounds();
  }

  TEST_CASE(
    "without the wait for groups (COMB_GROUP_COMMIT_WAIT=off) every commit is acknowledged") {
    setenv("COMB_GROUP_COMMIT_WAIT", "off", 1); // read when the committer is spawned
    commit_rounds();
    unsetenv("COMB_GROUP_COMMIT_WAIT");
  }
}
