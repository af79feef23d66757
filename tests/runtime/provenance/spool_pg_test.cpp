// A node spools its provenance log into PostgreSQL while it runs (comb node --spool
// postgresql://...): after it stops, the database holds what a SQLite store spooled from the
// same log holds, row for row, and answers the paper's provenance questions the same; a
// second run of the node on the same data and database adds only its new records. The
// PostgreSQL server is the test's own (tests/pg_server.hpp); skipped, visibly, when
// PostgreSQL is not installed.
#include "apps/bank/bank.hpp"
#include "node/node.hpp"
#include "runtime/system_config.hpp"
#include "storage/sql_store.hpp"
#include "tests/pg_server.hpp"
#include "tests/sql_store_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

using namespace comb;
using nlohmann::json;

namespace {

std::shared_ptr<runtime::procedure_registry> procs() {
  auto p = std::make_shared<runtime::procedure_registry>();
  apps::bank::register_bank(*p);
  return p;
}

// Opens accounts, moves money, reads balances (one denied call): the first run opens a..c,
// the second d and transfers more.
void workload(runtime::node& n, int run) {
  if (run == 0)
    for (auto* acct : {"a", "b", "c"})
      REQUIRE(n.call("bank.open", {{"account", acct}, {"balance", 100}}, "admin"));
  else
    REQUIRE(n.call("bank.open", {{"account", "d"}, {"balance", 1}}, "admin"));
  for (int i = 0; i < 5; ++i)
    REQUIRE(n.call("bank.transfer",
                   {{"id", "t" + std::to_string(run) + "-" + std::to_string(i)},
                    {"from", i % 2 ? "a" : "b"},
                    {"to", "c"},
                    {"amount", i + 1}},
                   "teller"));
  REQUIRE(n.call("bank.balance", {{"account", "c"}}, "auditor"));
  CHECK(!n.call("bank.open", {{"account", "x"}, {"balance", 1}}, "auditor")); // denied
}

json contents(storage::sql_store& s) {
  using namespace storage::prov_sql;
  return test::store_contents(s, {{"last_writer", last_writer, {"bank.accounts"}},
                                  {"hot", most_updated_table, {"0", "9223372036854775807"}},
                                  {"by_user", rows_of_user, {"teller", "0", "9223372036854775807"}},
                                  {"readers", readers_of_row, {"bank.accounts", "c"}},
                                  {"down", downstream, {"bank.accounts", "a"}},
                                  {"up", upstream, {"bank.transfers", "t0-0"}},
                                  {"at_now", table_at, {"bank.accounts", "9223372036854775807"}}});
}

} // namespace

TEST_SUITE("runtime.provenance.spool_pg") {
  TEST_CASE("a node spools into PostgreSQL what a SQLite store gets from its log") {
    test::pg_server pg;
    if (!pg.available()) {
      MESSAGE("SKIPPED: " << pg.why());
      return;
    }
    REQUIRE_MESSAGE(pg.running(), pg.why());
    test::temp_dir dir;
    runtime::node_config cfg;
    cfg.data_dir = dir.path() + "/data";
    cfg.provenance_dir = dir.path() + "/log";
    cfg.durability = storage::durability::async;
    cfg.record_reads = true;
    cfg.spool_file = pg.url();
    for (int run = 0; run < 2; ++run) {
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      auto n = test::must(runtime::node::start(sys, cfg, procs()));
      workload(*n, run);
      // The node's destructor stops the spooler after a last pass.
    }
    auto store = test::must(storage::sql_store::open(pg.url(), /*read_only=*/true));
    auto lite = test::must(storage::sql_store::open(dir.path() + "/log.sqlite"));
    auto n = test::must(lite->spool(cfg.provenance_dir, /*max_records=*/0, cfg.name));
    CHECK(n == 18); // 10 calls in the first run, 8 in the second
    CHECK(store->last_lsn() == lite->last_lsn());
    auto a = contents(*lite), b = contents(*store);
    test::check_same(a, b, "SQLite", "PostgreSQL");
    // Current rows say what the bank says: c got 1+2+3+4+5 twice.
    auto c = test::must(store->query("SELECT balance, write_execution_id FROM bank_accounts "
                                     "WHERE row_key = 'c'"));
    REQUIRE(c.size() == 1);
    CHECK(c[0]["balance"] == 130);
    auto last = test::must(store->query(
      "SELECT MAX(execution_id) AS e FROM row_events WHERE table_name = 'bank.accounts' "
      "AND row_key = 'c'"));
    CHECK(c[0]["write_execution_id"] == last[0]["e"]);
    CHECK(test::must(store->query("SELECT COUNT(*) AS n FROM bank_accounts"))[0]["n"] == 4);
    // No duplicates: one row per invocation, whatever the passes and restarts were.
    CHECK(test::must(store->query("SELECT COUNT(*) AS n FROM func_invocations"))[0]["n"] == 18);
  }
}
