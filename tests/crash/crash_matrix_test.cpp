// The crash matrix (issue 16): for each sync point on the commit, group-commit, provenance-log
// and spool paths, a `comb node` child process (sync durability, provenance and spooling on)
// takes bank transfers with idempotency ids from several client threads and kills itself
// with SIGKILL at that point (COMB_KILL_AT, base/sync_point.hpp). It restarts on the same
// data folder and stops cleanly; then every acknowledged account and transfer is in the
// database and the total is conserved, `comb log verify --data` finds the log whole, the
// log's lsns run from 1 without a gap or a repeat and hold every acknowledged transfer once,
// the SQL store spooled up to the log's end without a repeated lsn, and replaying the log
// gives the database's digest.
#include "base/errc.hpp"
#include "runtime/provenance/spooler.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"
#include "storage/provenance_log.hpp"
#include "storage/sql_store.hpp"
#include "storage/transaction.hpp"
#include "tests/client_util.hpp"
#include "tests/crash/crash_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <sys/wait.h>

using namespace comb;
using nlohmann::json;

namespace {

constexpr int64_t initial = 1'000'000;
constexpr int threads = 4;

struct point {
  const char* name;
  /// COMB_KILL_AFTER: the hit that kills (commits, batches or passes before it run).
  int after;
};

// What the clients of one run were told.
struct acked {
  std::mutex mtx;
  std::vector<std::string> accounts;
  std::vector<std::string> transfers;
  /// Why the clients could not connect (empty: they did).
  std::string connect_error;
};

// Client threads: each opens two accounts, then transfers among all accounts (ids unique per
// run) until its calls fail, which they do once the node is gone.
void load(caf::actor_system& sys, int port, acked& out, std::atomic<int>& done) {
  auto c = test::connect_retry(sys, port);
  if (!c) { // said by the test's thread (doctest's REQUIRE aborts in any other)
    out.connect_error = test::why(c);
    return;
  }
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t)
    clients.emplace_back([&, t] {
      for (int a = 0; a < 2; ++a) {
        auto id = "a" + std::to_string(t * 2 + a);
        auto r = c->call("bank.open", json{{"account", id}, {"balance", initial}}.dump(), "admin",
                         std::chrono::seconds{10});
        if (!r) {
          ++done;
          return;
        }
        std::lock_guard guard{out.mtx};
        out.accounts.push_back(id);
      }
      for (int i = 0;; ++i) {
        int from = (t * 2 + i) % (threads * 2), to = (from + 1 + i % 5) % (threads * 2);
        auto id = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto r = c->call("bank.transfer",
                         json{{"id", id},
                              {"from", "a" + std::to_string(from)},
                              {"to", "a" + std::to_string(to)},
                              {"amount", 1 + i % 7}}
                           .dump(),
                         "teller", std::chrono::seconds{10});
        if (!r) {
          // A refusal by the procedure (an account not open yet) is an answer: go on.
          if (is(r.error(), errc::procedure_failed) || is(r.error(), errc::invalid_argument)
              || is(r.error(), errc::not_found))
            continue;
          break;
        }
        std::lock_guard guard{out.mtx};
        out.transfers.push_back(id);
      }
      ++done;
    });
  for (auto& th : clients)
    th.join();
}

void check_point(caf::actor_system& sys, const point& p) {
  test::temp_dir dir;
  auto data = dir.path() + "/node";
  auto log_dir = data + "/provenance";
  std::string name = p.name;
  CAPTURE(name);
  acked ack;
  std::atomic<int> done{0};
  {
    int port = test::free_port();
    auto argv = test::node_argv(data, port);
    argv.insert(argv.begin(), {"/usr/bin/env", std::string{"COMB_KILL_AT="} + p.name,
                               "COMB_KILL_AFTER=" + std::to_string(p.after)});
    test::child_process node{argv, dir.path() + "/node1.log"};
    std::thread loader{[&] { load(sys, port, ack, done); }};
    int status = test::wait_exit(node, std::chrono::seconds{60});
    if (status == -1)
      node.kill(SIGKILL);
    loader.join();
    REQUIRE_MESSAGE(ack.connect_error.empty(), ack.connect_error
                                                 << "; node log:\n"
                                                 << test::read_file(dir.path() + "/node1.log"));
    // The point was reached: the node killed itself there (not a crash elsewhere, not a
    // clean exit, not a kill by this test).
    CHECK_MESSAGE(test::killed_at_point(status), "status "
                                                   << status << "; node log:\n"
                                                   << test::read_file(dir.path() + "/node1.log"));
  }
  MESSAGE(name << ": " << ack.accounts.size() << " accounts and " << ack.transfers.size()
               << " transfers acknowledged before the kill");

  // Restart on the same folder (recovery), let it serve once, stop it cleanly.
  {
    int port = test::free_port();
    test::child_process node{test::node_argv(data, port), dir.path() + "/node2.log"};
    auto c = test::connect_retry(sys, port);
    REQUIRE_MESSAGE(c, test::why(c) << "\n" << test::read_file(dir.path() + "/node2.log"));
    auto total = c->call("bank.total", "{}", "auditor");
    REQUIRE_MESSAGE(total, test::why(total));
    int status = node.kill(SIGTERM);
    CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  test::read_file(dir.path() + "/node2.log"));
  }

  // Every acknowledged account and transfer is in the database; the total is conserved.
  {
    storage::options so;
    so.create_if_missing = false;
    auto db = test::must(storage::database::open(data, so));
    auto txn = db->begin();
    size_t accounts = 0;
    int64_t sum = 0;
    REQUIRE(!txn->scan("bank.accounts", "", "", [&](auto, std::string_view v) {
      ++accounts;
      sum += json::from_msgpack(v)["balance"].template get<int64_t>();
      return true;
    }));
    CHECK(sum == static_cast<int64_t>(accounts) * initial);
    for (auto* ids : {&ack.accounts, &ack.transfers}) {
      size_t missing = 0;
      for (auto& id : *ids) {
        auto row = txn->get(ids == &ack.accounts ? "bank.accounts" : "bank.transfers", id);
        REQUIRE(row);
        missing += !*row;
      }
      CHECK_MESSAGE(missing == 0, missing << " acknowledged ids are missing");
    }
    txn->rollback();
  }

  // The log is whole: verify with the database's end, lsns dense from 1, every acknowledged
  // transfer committed in it exactly once.
  test::check_verify(dir.path(), data, log_dir);
  uint64_t next = 1, last = 0;
  std::map<std::string, int> logged; // transfer id -> committed invocations
  auto reader = test::must(storage::log_reader::open(log_dir));
  auto err = reader.for_each(0, [&](storage::log_record&& r) {
    CHECK(r.lsn == next);
    next = r.lsn + 1;
    last = r.lsn;
    if (r.kind == storage::log_record::kind_t::invocation && r.status == "ok"
        && r.procedure == "bank.transfer") {
      auto args = json::parse(r.payload, nullptr, false);
      if (args.is_object() && args.contains("id"))
        ++logged[args["id"].get<std::string>()];
    }
    return true;
  });
  CHECK_MESSAGE(!err, describe(err));
  size_t not_once = 0;
  for (auto& id : ack.transfers)
    not_once += logged[id] != 1;
  CHECK_MESSAGE(not_once == 0, not_once << " acknowledged transfers are not in the log once");
  for (auto& [id, n] : logged)
    CHECK_MESSAGE(n == 1, id << " committed " << n << " times in the log");

  // The spooler caught up with the log and spooled no lsn twice.
  {
    auto store = test::must(storage::sql_store::open(data + "/provenance.sqlite", true));
    CHECK(store->last_lsn() == last);
    auto spooled = runtime::check_spooled(*store, log_dir);
    CHECK_MESSAGE(!spooled, describe(spooled));
    auto rows = test::must(
      store->query("SELECT COUNT(*) AS n, COUNT(DISTINCT lsn) AS d FROM func_invocations"));
    REQUIRE(rows.size() == 1);
    CHECK(rows[0]["n"] == rows[0]["d"]);
  }

  // Replay gives the database's digest.
  test::check_replay_digest(dir.path(), data, log_dir);
}

} // namespace

TEST_SUITE("node.crash_matrix") {
  TEST_CASE("a kill at each sync point loses no acknowledged commit and no log record") {
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    // Counts: 8 opens come first, then transfers; batches and passes are counted as such.
    const std::vector<point> points{
      {"commit.before", 80},
      {"commit.before_reply", 80},
      {"group_commit.before_sync", 30},
      {"group_commit.before_ack", 30},
      {"provenance.after_commit", 80},
      {"log.torn_write", 6},
      {"log.before_sync", 6},
      {"log.new_segment", 1},
      {"spool.after_pass", 1},
    };
    for (auto& p : points) {
      SUBCASE(p.name) {
        check_point(sys, p);
      }
    }
  }

} // TEST_SUITE
