// Nectar's own provenance log spooled by a spooler that is killed with SIGKILL mid-run and
// started again: no row is lost or duplicated. A Nectar deployment of child processes
// (perf/nectar/nectar_stack.hpp: compute, node, `comb nectar serve`) takes traffic from the
// generator (benign sessions and attacks, captured and labeled); meanwhile the node, whose
// spooler copies its log into SQLite once a second, is killed and started again. Then
// `comb log spool` is killed at growing delays into a SQLite store, and into a PostgreSQL
// database where the suite's server is available (tests/pg_server.hpp), each store holding a
// part of the log first, and run again to its end. Every store must then hold what one
// uninterrupted `comb log spool` of the same log gives: every row of every table.
#include "apps/nectar/traffic.hpp"
#include "apps/apps.hpp"
#include "perf/nectar/nectar_stack.hpp"
#include "runtime/provenance/spooler.hpp"
#include "runtime/system_config.hpp"
#include "storage/sql_store.hpp"
#include "tests/apps/anomaly/tiny_detector.hpp"
#include "tests/pg_server.hpp"
#include "tests/sql_store_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

using namespace comb;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

/// Every row of every table of the store at `url`, and the request ids of httplog_request.
json contents(const std::string& url) {
  auto s = test::must(storage::sql_store::open(url, /*read_only=*/true));
  return test::store_contents(*s, {});
}

/// `c` without the node names of its rows: a node's spooler names the node ("n1"), while
/// `comb log spool` of a one-node log leaves the name empty.
json without_node_names(json c) {
  for (auto& [table, rows] : c.items())
    for (auto& row : rows)
      if (row.is_object()) {
        row.erase("node");
        row.erase("write_node");
      }
  return c;
}

/// Rows of `table` in the store at `url`, and how many distinct values `column` takes there.
std::pair<uint64_t, uint64_t> rows_and_distinct(const std::string& url, const std::string& table,
                                                const std::string& column) {
  auto s = test::must(storage::sql_store::open(url, /*read_only=*/true));
  auto r = test::must(s->query("SELECT COUNT(*) AS n, COUNT(DISTINCT " + column + ") AS d FROM \""
                               + table + "\""));
  return {r[0]["n"].get<uint64_t>(), r[0]["d"].get<uint64_t>()};
}

/// The SQL table a Comb table is spooled into.
std::string sql_table_of(const std::string& url, const std::string& comb_table) {
  auto s = test::must(storage::sql_store::open(url, /*read_only=*/true));
  auto r = test::must(
    s->query("SELECT sql_table FROM sql_tables WHERE comb_table = ? AND kind = 'state'",
             {comb_table}));
  REQUIRE_MESSAGE(r.size() == 1, comb_table << " is not in the store");
  return r[0]["sql_table"].get<std::string>();
}

/// Kills `comb log spool --log LOG --sql URL` after 5, 10, 20, ... ms until a run ends by
/// itself before its kill, then runs it to its end; returns the kills that stopped it.
/// `url` holds the first `head` records of the log beforehand (as a spooler stopped between
/// two passes leaves it), masked as `comb log spool` masks them.
int kill_and_restart(const std::string& log, const std::string& url, uint64_t head,
                     uint64_t last_lsn, const std::string& dir) {
  {
    auto s = test::must(storage::sql_store::open(url));
    runtime::procedure_registry procs;
    apps::register_all(procs);
    auto privacy = test::must(runtime::spool_privacy_of(procs, log));
    REQUIRE(!s->set_privacy(std::move(privacy)));
    CHECK(test::must(s->spool(log, head)) == head);
    REQUIRE(s->last_lsn() < last_lsn);
  }
  int kills = 0;
  for (int delay_ms = 5; delay_ms <= 5 << 10; delay_ms *= 2) {
    test::child_process p{{test::comb_binary(), "log", "spool", "--log", log, "--sql", url},
                          dir + "/spool-kill.log"};
    std::this_thread::sleep_for(std::chrono::milliseconds{delay_ms});
    if (!p.running())
      break; // done before its kill: the next run finds nothing left, or the rest
    p.kill(SIGKILL);
    ++kills;
    // A killed pass commits all of its records or none.
    auto s = test::must(storage::sql_store::open(url, /*read_only=*/true));
    auto at = s->last_lsn();
    CHECK_MESSAGE((at < last_lsn || at == last_lsn), at);
  }
  auto again = test::run_comb({"log", "spool", "--log", log, "--sql", url}, dir + "/spool-end.log");
  REQUIRE_MESSAGE(again.rc == 0, again.out);
  auto s = test::must(storage::sql_store::open(url, /*read_only=*/true));
  CHECK(s->last_lsn() == last_lsn);
  return kills;
}

} // namespace

TEST_SUITE("apps.nectar.spool_kill") {
  TEST_CASE("Nectar's log: a spooler killed mid-run and started again loses and duplicates no "
            "row, in SQLite and PostgreSQL") {
    test::temp_dir dir;
    auto model_file = dir.path() + "/waf.safetensors";
    auto d = anomaly::tiny::tiny_detector();
    REQUIRE(!d.save(model_file));
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    test::nectar_stack stack{dir.path()};
    auto node_store = dir.path() + "/node-spool.sqlite";
    auto err = stack.start_backend(model_file, {"--durability", "async", "--spool", node_store});
    REQUIRE_MESSAGE(!err, describe(err));
    err = stack.start_server();
    REQUIRE_MESSAGE(!err, describe(err));
    auto p = nectar::payload_lists::load(nectar::default_payload_dir());
    REQUIRE(p);
    nectar::traffic_options o;
    o.target = stack.http_addr();
    o.rate = 20;
    o.duration_s = 4;
    o.attack_share = 0.3;
    o.seed = 5;
    o.connections = 2;
    o.truth_file = dir.path() + "/truth.jsonl";
    // The node (and its spooler, a pass a second) is killed twice under traffic and started
    // again; the server's capture resends what the node did not acknowledge.
    std::atomic<bool> restart_failed{false};
    std::thread killer{[&] {
      for (int k = 0; k < 2; ++k) {
        std::this_thread::sleep_for(1300ms);
        if (stack.restart_node())
          restart_failed = true;
      }
    }};
    auto stats = nectar::run_traffic(o, *p);
    killer.join();
    REQUIRE_FALSE(restart_failed.load());
    REQUIRE_MESSAGE(stats, test::why(stats));
    CHECK(stats->answered > 0);
    // Everything the server answered reaches the node, and is labeled, before it stops.
    stack.stop_server();
    json counts;
    bool all = test::wait_until(
      [&] {
        auto c = stack.count(sys);
        if (!c)
          return false;
        counts = *c;
        return counts.value("requests", 0u) > 0
               && counts.value("labeled", 0u) >= counts.value("requests", 0u);
      },
      60s, "every captured request labeled");
    CHECK_MESSAGE(all, counts.dump());
    stack.stop_node(); // its spooler's last pass
    auto log = stack.data_dir() + "/provenance";
    // The reference: one uninterrupted spool of the whole log.
    auto ref_url = dir.path() + "/reference.sqlite";
    auto ref_run = test::run_comb({"log", "spool", "--log", log, "--sql", ref_url},
                                  dir.path() + "/spool-ref.log");
    REQUIRE_MESSAGE(ref_run.rc == 0, ref_run.out);
    auto ref = contents(ref_url);
    auto last_lsn = test::must(storage::sql_store::open(ref_url, true))->last_lsn();
    auto records = ref["func_invocations"].size();
    REQUIRE(records > 10);
    // The rows Nectar's capture and labels wrote: one per request, as many as the node counted.
    auto requests = sql_table_of(ref_url, "httplog_request");
    auto labeled = sql_table_of(ref_url, "httplog_request_labeled");
    auto [req_rows, req_ids] = rows_and_distinct(ref_url, requests, "row_key");
    CHECK(req_rows == counts.value("requests", 0u));
    CHECK(req_ids == req_rows);
    CHECK(rows_and_distinct(ref_url, labeled, "row_key").first == req_rows);

    // The node's own spooler, killed with the node twice.
    {
      test::check_same(without_node_names(contents(node_store)), without_node_names(ref),
                       "node's spooler", "reference");
    }
    // comb log spool into SQLite, killed at growing delays.
    {
      auto url = dir.path() + "/killed.sqlite";
      int kills = kill_and_restart(log, url, records / 3, last_lsn, dir.path());
      MESSAGE("SQLite: comb log spool killed " << kills << " times mid-run, " << records
                                               << " records");
      CHECK(kills >= 1);
      test::check_same(contents(url), ref, "killed and restarted", "reference");
    }
    // The same into PostgreSQL, where the suite's server is available.
    test::pg_server pg;
    if (!pg.available()) {
      MESSAGE("PostgreSQL part SKIPPED: " << pg.why());
    } else {
      REQUIRE_MESSAGE(pg.running(), pg.why());
      auto url = pg.create_database("nectar_spool_kill");
      REQUIRE(!url.empty());
      int kills = kill_and_restart(log, url, records / 3, last_lsn, dir.path());
      MESSAGE("PostgreSQL: comb log spool killed " << kills << " times mid-run");
      CHECK(kills >= 1);
      test::check_same(contents(url), ref, "PostgreSQL, killed and restarted", "SQLite reference");
    }
  }
}
