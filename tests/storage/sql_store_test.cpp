// Tests for the SQL analytics store: a hand-written provenance log spooled into SQLite and
// into PostgreSQL (a server the test starts itself; skipped, visibly, when PostgreSQL is not
// installed). Current-state tables follow inserts, updates that drop fields, deletes and
// widened column types; names that clash are renamed and registered; text that is not
// UTF-8 is cleaned; spooling twice, or in small passes, or after more records arrive, gives
// the same rows; and both stores give the same answers, row for row, to the same SQL.
#include "storage/sql_store.hpp"

#include "base/errc.hpp"
#include "storage/provenance_log.hpp"
#include "tests/pg_server.hpp"
#include "tests/sql_store_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <thread>

using namespace comb;
using nlohmann::json;

namespace {

struct change {
  std::string table, key;
  storage::row_change::op op = storage::row_change::op::insert;
  json row;        // a JSON row (null for a delete)
  std::string raw; // raw bytes, when not a row
};

storage::log_record invocation(uint64_t exec, const std::string& proc, const std::string& role,
                               int64_t ts, std::vector<change> changes,
                               std::vector<storage::row_read> reads = {}) {
  storage::log_record r;
  r.kind = storage::log_record::kind_t::invocation;
  r.timestamp_ns = ts;
  r.start_ns = ts - 10;
  r.end_ns = ts;
  r.sender = "client";
  r.receiver = "n1/p0";
  r.execution_id = exec;
  r.procedure = proc;
  r.role = role;
  r.status = "ok";
  r.payload = R"({"call":)" + std::to_string(exec) + "}";
  r.result = "{}";
  for (auto& c : changes) {
    storage::row_change rc;
    rc.table = c.table;
    rc.key = c.key;
    rc.kind = c.op;
    if (!c.raw.empty()) {
      rc.is_row = false;
      rc.value = c.raw;
    } else if (c.op != storage::row_change::op::del) {
      auto bytes = json::to_msgpack(c.row);
      rc.value.assign(bytes.begin(), bytes.end());
    }
    r.changes.push_back(std::move(rc));
  }
  r.reads = std::move(reads);
  return r;
}

using op = storage::row_change::op;

// The log of the test: lsn 1..10, then 11..12 when `more`.
std::vector<storage::log_record> records(bool more) {
  std::vector<storage::log_record> v;
  v.push_back(
    invocation(101, "bank.open", "admin", 1000,
               {{"bank.accounts", "a", op::insert, {{"balance", 100}, {"owner", "ann"}}}}));
  v.push_back(invocation(102, "bank.open", "admin", 2000,
                         {{"bank.accounts", "b", op::insert, {{"balance", 100}}}}));
  v.push_back(
    invocation(103, "bank.transfer", "teller", 3000,
               {{"bank.accounts", "a", op::update, {{"balance", 95}, {"owner", "ann"}}},
                {"bank.accounts", "b", op::update, {{"balance", 105}}},
                {"bank.transfers", "t1", op::insert, {{"from", "a"}, {"to", "b"}, {"amount", 5}}}},
               {{"bank.accounts", "a"}, {"bank.accounts", "b"}}));
  storage::log_record m;
  m.kind = storage::log_record::kind_t::message;
  m.timestamp_ns = 3500;
  m.sender = "n1/fn";
  m.receiver = "compute";
  m.execution_id = 103;
  m.procedure = "anomaly.score";
  m.payload = "piece task=1 piece=0";
  v.push_back(m);
  v.push_back(invocation(105, "nectar.capture", "nectar", 5000,
                         {{"httplog_request",
                           "r1",
                           op::insert,
                           {{"ts_ns", 5000},
                            {"execution_id", 77},
                            {"cs_method", "GET"},
                            {"sc_status", 200},
                            {"raw", "GET / HTTP/1.1\r\n\r\n"},
                            {"truncated", false},
                            {"rule_score", 1},
                            {"rule_ids", 942100},
                            {"cs_cookie", nullptr},
                            {"row_key", "field named row_key"},
                            {"Weird Name!", "x"}}}},
                         {{"bank.accounts", "a"}}));
  v.push_back(invocation(106, "nectar.capture", "nectar", 6000,
                         {{"httplog_request",
                           "r2",
                           op::insert,
                           {{"ts_ns", 6000},
                            {"execution_id", 0},
                            {"cs_method", "POST"},
                            {"sc_status", 403},
                            {"raw", std::string("POST /\xff\xfe\0x", 10)},
                            {"truncated", true},
                            {"rule_score", 0.75},
                            {"rule_ids", "942100,941100"},
                            {"cs_cookie", "s=1"}}}}));
  v.push_back(invocation(107, "bank.close", "admin", 7000,
                         {{"bank.accounts", "b", op::del, nullptr},
                          {"bank.accounts", "a", op::update, {{"balance", 90}}}}));
  v.push_back(invocation(108, "odd.names", "admin", 8000,
                         {{"func_invocations", "k", op::insert, {{"x", 1}}},
                          {"a.b", "k", op::insert, {{"v", 1}}},
                          {"a_b", "k", op::insert, {{"v", 2}}}}));
  v.push_back(
    invocation(109, "comb.model.put", "admin", 9000,
               {{"model.chunks", "m/1/0", op::insert, nullptr, std::string(100, '\x07')}}));
  v.push_back(invocation(110, "odd.rows", "admin", 10000,
                         {{"odd.rows", "arr", op::insert, json::array({1, 2})},
                          {"mixed", "k1", op::insert, {{"v", 1}}},
                          {"mixed", "k2", op::insert, {{"v", "x"}}},
                          {"mixed", "k3", op::insert, {{"v", 2.5}}},
                          {"__provenance", "p0", op::update, {{"lsn", 9}}}}));
  if (more) {
    v.push_back(
      invocation(111, "bank.open", "admin", 11000,
                 {{"bank.accounts", "c", op::insert, {{"balance", 7}, {"owner", "cy"}}}}));
    v.push_back(invocation(112, "nectar.capture", "nectar", 12000,
                           {{"httplog_request",
                             "r1",
                             op::update,
                             {{"ts_ns", 5000}, {"cs_method", "GET"}, {"sc_status", 500}}}}));
  }
  return v;
}

void write_log(const std::string& dir, bool more) {
  auto w = test::must(storage::log_writer::open(dir));
  auto all = records(more);
  for (uint64_t i = w->next_lsn() - 1; i < all.size(); ++i) {
    auto lsn = w->next_lsn();
    all[i].lsn = lsn;
    REQUIRE(!w->append(lsn, storage::encode(all[i])));
  }
  REQUIRE(!w->sync());
}

// Every row of the store and the answers to the paper's questions, by the same SQL in both
// stores.
json everything(storage::sql_store& s) {
  using namespace storage::prov_sql;
  return test::store_contents(s, {{"last_writer", last_writer, {"bank.accounts"}},
                                  {"hot", most_updated_table, {"0", "4000"}},
                                  {"by_user", rows_of_user, {"teller", "0", "9223372036854775807"}},
                                  {"by_user_range", rows_of_user, {"admin", "1500", "7500"}},
                                  {"readers", readers_of_row, {"bank.accounts", "a"}},
                                  {"down", downstream, {"bank.accounts", "a"}},
                                  {"up", upstream, {"bank.transfers", "t1"}},
                                  {"at_2500", table_at, {"bank.accounts", "2500"}},
                                  {"at_now", table_at, {"bank.accounts", "9223372036854775807"}}});
}

// Checks what the spooled log must give, whichever store holds it.
void check_contents(storage::sql_store& s, bool more) {
  auto rows = [&](const std::string& sql) {
    auto r = s.query(sql);
    REQUIRE_MESSAGE(r, sql << ": " << test::why(r));
    return *r;
  };
  CHECK(rows("SELECT COUNT(*) AS n FROM func_invocations")[0]["n"] == (more ? 11 : 9));
  CHECK(rows("SELECT COUNT(*) AS n FROM messages")[0]["n"] == (more ? 23 : 19));
  // Current rows: b deleted, a's owner dropped by its last update.
  auto acc = rows("SELECT * FROM bank_accounts ORDER BY row_key");
  REQUIRE(acc.size() == (more ? 2 : 1));
  CHECK(acc[0]["row_key"] == "a");
  CHECK(acc[0]["balance"] == 90);
  CHECK(acc[0]["owner"].is_null());
  CHECK(acc[0]["lsn"] == 7);
  CHECK(acc[0]["write_execution_id"] == 107);
  CHECK(rows("SELECT COUNT(*) AS n FROM bank_accounts_events")[0]["n"] == (more ? 7 : 6));
  // httplog_request: the fields keep their names (ts_ns, execution_id); the one named like
  // a fixed column is renamed; types widened.
  auto req = rows("SELECT * FROM httplog_request ORDER BY ts_ns");
  REQUIRE(req.size() == 2);
  CHECK(req[0]["row_key"] == "r1");
  CHECK(req[0]["execution_id"] == (more ? json(nullptr) : json(77)));
  CHECK(req[0]["write_execution_id"] == (more ? 112 : 105));
  CHECK(req[0]["sc_status"] == (more ? 500 : 200));
  CHECK(req[1]["rule_score"] == 0.75);
  CHECK(req[1]["rule_ids"] == "942100,941100");
  CHECK(req[1]["truncated"] == 1);
  CHECK(req[1]["raw"] == "POST /\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdx");
  if (!more) {
    CHECK(req[0]["rule_score"] == 1.0);
    CHECK(req[0]["rule_ids"] == "942100");
    CHECK(req[0]["row_key_2"] == "field named row_key");
    CHECK(req[0]["weird_name_"] == "x");
  }
  auto cols = rows("SELECT field, column_name, type FROM sql_columns "
                   "WHERE sql_table = 'httplog_request' ORDER BY field");
  std::map<std::string, std::string> types;
  for (auto& c : cols)
    types[c["column_name"].get<std::string>()] = c["type"].get<std::string>();
  CHECK(types["ts_ns"] == "INTEGER");
  CHECK(types["rule_score"] == "REAL");
  CHECK(types["rule_ids"] == "TEXT");
  CHECK(types["cs_cookie"] == "TEXT");
  // Clashes: renamed, and the registry says where each Comb table went.
  auto reg = rows("SELECT comb_table, sql_table FROM sql_tables WHERE kind = 'state' "
                  "ORDER BY comb_table");
  std::map<std::string, std::string> where;
  for (auto& r : reg)
    where[r["comb_table"].get<std::string>()] = r["sql_table"].get<std::string>();
  CHECK(where["func_invocations"] == "func_invocations_2");
  CHECK(where["a.b"] == "a_b");
  CHECK(where["a_b"] == "a_b_2");
  CHECK(where.count("model.chunks") == 0); // raw bytes: events only
  CHECK(where.count("odd.rows") == 0);     // not an object
  CHECK(where.count("__provenance") == 0); // Comb's own
  CHECK(test::must(s.state_table_of("a_b")) == "a_b_2");
  CHECK(test::must(s.events_table_of("a_b")) == "a_b_events_2");
  CHECK(rows("SELECT v FROM a_b_2")[0]["v"] == 2);
  CHECK(rows("SELECT x FROM func_invocations_2")[0]["x"] == 1);
  // One column, three types in one pass: widened to TEXT.
  auto mixed = rows("SELECT v FROM mixed ORDER BY row_key");
  REQUIRE(mixed.size() == 3);
  CHECK(mixed[0]["v"] == "1");
  CHECK(mixed[1]["v"] == "x");
  CHECK(mixed[2]["v"] == "2.5");
  CHECK(rows("SELECT bytes FROM model_chunks_events")[0]["bytes"] == 100);
  // The paper's questions.
  using namespace storage::prov_sql;
  auto lw = test::must(s.query(last_writer, {"bank.accounts"}));
  REQUIRE(lw.size() == 1);
  CHECK(lw[0]["execution_id"] == (more ? 111 : 107));
  CHECK(lw[0]["procedure"] == (more ? "bank.open" : "bank.close"));
  auto at = test::must(s.query(table_at, {"bank.accounts", "2500"}));
  REQUIRE(at.size() == 2);
  CHECK(json::parse(at[1]["value"].get<std::string>())["balance"] == 100);
  auto down = test::must(s.query(downstream, {"bank.accounts", "a"}));
  std::set<std::string> d;
  for (auto& r : down)
    d.insert(r["table_name"].get<std::string>() + "/" + r["row_key"].get<std::string>());
  CHECK(d == std::set<std::string>{"bank.accounts/b", "bank.transfers/t1", "httplog_request/r1"});
}

} // namespace

TEST_SUITE("storage.sql_store") {
  TEST_CASE("SQLite: current-state tables, renamed clashes, widened types; spooling is "
            "idempotent in any number of passes") {
    test::temp_dir dir;
    auto log = dir.path() + "/log";
    write_log(log, false);
    auto s = test::must(storage::sql_store::open(dir.path() + "/a.sqlite"));
    CHECK(std::string{s->backend()} == "sqlite");
    CHECK(test::must(s->spool(log)) == 10);
    CHECK(test::must(s->spool(log)) == 0);
    CHECK(s->last_lsn() == 10);
    check_contents(*s, false);
    auto idx = test::must(s->query("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                                   "tbl_name = 'httplog_request' AND name LIKE '%ts_ns%'"));
    CHECK(idx.size() == 1);
    auto once = everything(*s);

    // Three records a pass, then more records: the same rows as one pass over all.
    auto p = test::must(storage::sql_store::open(dir.path() + "/b.sqlite"));
    uint64_t total = 0;
    for (int i = 0; i < 10; ++i)
      total += test::must(p->spool(log, 3));
    CHECK(total == 10);
    CHECK(everything(*p) == once);
    write_log(log, true);
    CHECK(test::must(s->spool(log)) == 2);
    CHECK(test::must(p->spool(log)) == 2);
    check_contents(*s, true);
    CHECK(everything(*p) == everything(*s));
    // Reopened, it knows its registry: nothing is spooled or created again.
    s.reset();
    s = test::must(storage::sql_store::open(dir.path() + "/a.sqlite"));
    CHECK(test::must(s->spool(log)) == 0);
    check_contents(*s, true);

    // Read-only: queries, no writes.
    auto ro = test::must(storage::sql_store::open(dir.path() + "/a.sqlite", /*read_only=*/true));
    CHECK(!ro->query("DELETE FROM messages"));
    CHECK(test::must(ro->query("SELECT COUNT(*) AS n FROM messages"))[0]["n"] == 23);
    auto bad = ro->query("SELEKT 1");
    REQUIRE(!bad);
    CHECK(is(bad.error(), errc::invalid_argument));
  }

  TEST_CASE("PostgreSQL: the same log gives the same rows and answers as SQLite") {
    test::pg_server pg;
    if (!pg.available()) {
      MESSAGE("SKIPPED: " << pg.why());
      return;
    }
    REQUIRE_MESSAGE(pg.running(), pg.why());
    test::temp_dir dir;
    auto log = dir.path() + "/log";
    write_log(log, false);
    auto lite = test::must(storage::sql_store::open(dir.path() + "/a.sqlite"));
    REQUIRE(test::must(lite->spool(log)) == 10);
    auto url = pg.url();
    auto opened = storage::sql_store::open(url);
    REQUIRE_MESSAGE(opened, test::why(opened));
    auto& s = *opened;
    CHECK(std::string{s->backend()} == "postgresql");
    CHECK(test::must(s->spool(log)) == 10);
    CHECK(test::must(s->spool(log)) == 0);
    check_contents(*s, false);
    auto idx = test::must(s->query("SELECT indexname FROM pg_indexes WHERE tablename = "
                                   "'httplog_request' AND indexname LIKE '%ts_ns%'"));
    CHECK(idx.size() == 1);
    auto a = everything(*lite), b = everything(*s);
    test::check_same(a, b, "SQLite", "PostgreSQL");

    // In small passes into another database, then more records, and a second connection.
    auto url2 = pg.create_database("small_passes");
    REQUIRE(!url2.empty());
    auto p = test::must(storage::sql_store::open(url2));
    uint64_t total = 0;
    for (int i = 0; i < 10; ++i)
      total += test::must(p->spool(log, 3));
    CHECK(total == 10);
    CHECK(everything(*p) == b);
    write_log(log, true);
    CHECK(test::must(lite->spool(log)) == 2);
    auto again = test::must(storage::sql_store::open(url));
    CHECK(test::must(again->spool(log)) == 2);
    CHECK(test::must(s->spool(log)) == 0); // the other connection's pass counts here too
    check_contents(*s, true);
    CHECK(everything(*s) == everything(*lite));

    // Read-only: a write fails and is rolled back.
    auto ro = test::must(storage::sql_store::open(url, /*read_only=*/true));
    CHECK(!ro->query("DELETE FROM messages"));
    CHECK(test::must(ro->query("SELECT COUNT(*) AS n FROM messages"))[0]["n"] == 23);
    auto bad = ro->query("SELEKT 1");
    REQUIRE(!bad);
    CHECK(is(bad.error(), errc::invalid_argument));
    CHECK(test::must(ro->query("SELECT ?1 AS x", {"it's"}))[0]["x"] == "it's");
  }

  TEST_CASE("a store an older Comb spooled keeps its events tables; tables it did not create "
            "keep their names") {
    test::temp_dir dir;
    auto log = dir.path() + "/log";
    write_log(log, false);
    auto file = dir.path() + "/old.sqlite";
    {
      // What the spool wrote before the registry: untyped field columns, lsn 1 spooled; and
      // a table of someone else's where the current rows of bank.accounts would go.
      auto s = test::must(storage::sql_store::open(file));
      REQUIRE(test::must(s->query("DROP TABLE sql_tables")).empty());
      REQUIRE(test::must(s->query("DROP TABLE sql_columns")).empty());
      for (auto* sql :
           {"CREATE TABLE bank_accounts_events(lsn INTEGER, seq INTEGER, op TEXT, row_key TEXT, "
            "execution_id INTEGER, role TEXT, ts_ns INTEGER, PRIMARY KEY(lsn, seq))",
            "ALTER TABLE bank_accounts_events ADD COLUMN balance",
            "ALTER TABLE bank_accounts_events ADD COLUMN owner",
            "INSERT INTO bank_accounts_events VALUES (1, 0, 'insert', 'a', 101, 'admin', 1000, "
            "100, 'ann')",
            "UPDATE spool_state SET last_lsn = 1", "CREATE TABLE bank_accounts(note TEXT)"})
        REQUIRE_MESSAGE(s->query(sql), sql);
    }
    auto s = test::must(storage::sql_store::open(file));
    CHECK(test::must(s->spool(log)) == 9);
    auto ev = test::must(s->query("SELECT balance FROM bank_accounts_events ORDER BY lsn, seq"));
    REQUIRE(ev.size() == 6);
    CHECK(ev[0]["balance"] == 100);
    CHECK(ev[5]["balance"] == 90);
    CHECK(test::must(s->events_table_of("bank.accounts")) == "bank_accounts_events");
    CHECK(test::must(s->state_table_of("bank.accounts")) == "bank_accounts_2");
    CHECK(test::must(s->query("SELECT COUNT(*) AS n FROM bank_accounts"))[0]["n"] == 0);
    auto cur = test::must(s->query("SELECT row_key, balance FROM bank_accounts_2"));
    REQUIRE(cur.size() == 1); // a (b was deleted); lsn 1's insert came before this store
    CHECK(cur[0]["balance"] == 90);
  }

  TEST_CASE("several nodes' logs, each with its own lsns, meet in one store, named by node") {
    test::temp_dir dir;
    auto log1 = dir.path() + "/n1", log2 = dir.path() + "/n2";
    write_log(log1, false); // lsns 1..10
    write_log(log2, true);  // lsns 1..12: the same lsns as n1's, other records
    auto file = dir.path() + "/cluster.sqlite";
    // Two nodes spool at once into one SQLite file: the writers take turns (busy timeout).
    std::vector<std::thread> spoolers;
    std::vector<caf::expected<uint64_t>> got(2, uint64_t{0});
    for (int i = 0; i < 2; ++i)
      spoolers.emplace_back([&, i] {
        auto s = storage::sql_store::open(file);
        if (!s) {
          got[i] = std::move(s.error());
          return;
        }
        uint64_t n = 0;
        for (int pass = 0; pass < 6; ++pass) { // small passes, so that they interleave
          auto k = (*s)->spool(i == 0 ? log1 : log2, /*max_records=*/2, i == 0 ? "n1" : "n2");
          if (!k) {
            got[i] = std::move(k.error());
            return;
          }
          n += *k;
        }
        got[i] = n;
      });
    for (auto& t : spoolers)
      t.join();
    REQUIRE_MESSAGE(got[0], test::why(got[0]));
    REQUIRE_MESSAGE(got[1], test::why(got[1]));
    CHECK(*got[0] == 10);
    CHECK(*got[1] == 12);
    auto s = test::must(storage::sql_store::open(file));
    CHECK(test::must(s->spool(log1, 0, "n1")) == 0);
    CHECK(test::must(s->spool(log2, 0, "n2")) == 0);
    CHECK(s->last_lsn("n1") == 10);
    CHECK(s->last_lsn("n2") == 12);
    CHECK(s->last_lsn("n3") == 0);
    CHECK(s->last_lsn() == 12);
    CHECK(test::must(s->nodes()) == std::vector<std::string>{"n1", "n2"});
    auto rows = [&](const std::string& sql) {
      auto r = s->query(sql);
      REQUIRE_MESSAGE(r, sql << ": " << test::why(r));
      return *r;
    };
    // Both nodes' lsn 1 are there, each under its node.
    auto inv = rows("SELECT node, COUNT(*) AS n FROM func_invocations GROUP BY node ORDER BY node");
    REQUIRE(inv.size() == 2);
    CHECK(inv[0] == json{{"node", "n1"}, {"n", 9}});
    CHECK(inv[1] == json{{"node", "n2"}, {"n", 11}});
    CHECK(rows("SELECT COUNT(*) AS n FROM messages WHERE lsn = 1")[0]["n"] == 4);
    CHECK(rows("SELECT COUNT(DISTINCT node) AS n FROM bank_accounts_events WHERE lsn = 1")[0]["n"]
          == 2);
    // Each event joins its own node's invocation, not the other node's at the same lsn.
    CHECK(rows("SELECT COUNT(*) AS n FROM row_events e JOIN func_invocations f ON f.node = e.node "
               "AND f.lsn = e.lsn AND f.execution_id = e.execution_id")[0]["n"]
          == rows("SELECT COUNT(*) AS n FROM row_events")[0]["n"]);
    // Current rows say which node wrote them last: n2's c exists only on n2.
    auto c = rows("SELECT write_node, balance FROM bank_accounts WHERE row_key = 'c'");
    REQUIRE(c.size() == 1);
    CHECK(c[0] == json{{"write_node", "n2"}, {"balance", 7}});

    // A store an older Comb made (keyed by lsn alone) takes its one node, and refuses another.
    auto old_file = dir.path() + "/old.sqlite";
    {
      auto o = test::must(storage::sql_store::open(dir.path() + "/scratch.sqlite"));
      REQUIRE(o->query("ATTACH DATABASE '" + old_file + "' AS old"));
      for (auto* sql :
           {"CREATE TABLE old.func_invocations(lsn INTEGER PRIMARY KEY, txn_id INTEGER, "
            "execution_id INTEGER, parent_id INTEGER, procedure TEXT, role TEXT, "
            "status TEXT, read_only INTEGER, start_ns INTEGER, end_ns INTEGER, "
            "partition INTEGER, args TEXT, result TEXT)",
            "CREATE TABLE old.messages(lsn INTEGER, seq INTEGER, ts_ns INTEGER, kind "
            "TEXT, sender TEXT, receiver TEXT, execution_id INTEGER, parent_id "
            "INTEGER, procedure TEXT, role TEXT, status TEXT, payload TEXT, "
            "PRIMARY KEY(lsn, seq))",
            "CREATE TABLE old.row_events(lsn INTEGER, seq INTEGER, table_name TEXT, "
            "row_key TEXT, op TEXT, execution_id INTEGER, role TEXT, ts_ns INTEGER, "
            "value TEXT, PRIMARY KEY(lsn, seq))",
            "CREATE TABLE old.row_reads(lsn INTEGER, seq INTEGER, table_name TEXT, "
            "row_key TEXT, execution_id INTEGER, role TEXT, ts_ns INTEGER, "
            "PRIMARY KEY(lsn, seq))",
            "CREATE TABLE old.spool_state(id INTEGER PRIMARY KEY CHECK (id = 1), "
            "last_lsn INTEGER)",
            "INSERT INTO old.spool_state VALUES (1, 0)"})
        REQUIRE_MESSAGE(o->query(sql), sql);
    }
    auto o = test::must(storage::sql_store::open(old_file));
    CHECK(test::must(o->spool(log1, 0, "n1")) == 10);
    auto refused = o->spool(log2, 0, "n2");
    REQUIRE(!refused);
    CHECK(is(refused.error(), errc::format_mismatch));
    CHECK(describe(refused.error()).find("holds node 'n1'") != std::string::npos);
    CHECK(test::must(o->query("SELECT COUNT(*) AS n FROM func_invocations"))[0]["n"] == 9);
    CHECK(test::must(o->query("SELECT DISTINCT node FROM func_invocations"))[0]["node"] == "n1");
  }

  TEST_CASE("PostgreSQL: large passes go through COPY and give the rows SQLite and the SQL "
            "form give; spooling everything again adds no row") {
    test::pg_server pg;
    if (!pg.available()) {
      MESSAGE("SKIPPED: " << pg.why());
      return;
    }
    REQUIRE_MESSAGE(pg.running(), pg.why());
    test::temp_dir dir;
    auto log = dir.path() + "/log";
    {
      // 400 captures: text COPY must escape (tab, newline, CR, backslash, quotes, non-ASCII),
      // a column widened from INTEGER to REAL half-way, runs of 40 upserts with a key written
      // twice in one transaction (a key twice in one run), deletes, reads and messages.
      auto w = test::must(storage::log_writer::open(log));
      for (int i = 0; i < 400; ++i) {
        auto key = "r" + std::to_string(i);
        json req{{"ts_ns", 1000 + i},
                 {"sc_status", i % 7 == 0 ? 400 : 200},
                 {"raw", "GET /?q=" + std::to_string(i) + "\t\\N\r\n'\"\\ é€ end"},
                 {"score", i < 200 ? json(i) : json(i + 0.5)},
                 {"cs_cookie", i % 3 == 0 ? json(nullptr) : json("c=1")}};
        std::vector<change> changes{{"httplog_request", key, op::insert, req}};
        // Every 40th: the labels of the last 40 in one run of upserts, then one of them again.
        if (i % 40 == 39) {
          for (int k = i - 39; k <= i; ++k)
            changes.push_back({"httplog_request_labeled",
                               "r" + std::to_string(k),
                               op::insert,
                               {{"label", k % 2}, {"score", 0.25}}});
          changes.push_back({"httplog_request_labeled", key, op::update, {{"label", 1}}});
        }
        if (i % 50 == 49)
          changes.push_back({"httplog_request", "r" + std::to_string(i - 40), op::del, nullptr});
        auto r = invocation(5000 + i, "httplog.capture", "nectar", 10000 + i, changes,
                            {{"httplog_request", key}});
        auto lsn = w->next_lsn();
        r.lsn = lsn;
        REQUIRE(!w->append(lsn, storage::encode(r)));
        if (i % 10 == 0) {
          storage::log_record m;
          m.kind = storage::log_record::kind_t::message;
          m.timestamp_ns = 10000 + i;
          m.sender = "outbox_dispatcher";
          m.receiver = "function/0";
          m.execution_id = 5000 + i;
          m.payload = "function_call {\"call\":\"" + key + "\"}";
          m.lsn = w->next_lsn();
          REQUIRE(!w->append(m.lsn, storage::encode(m)));
        }
      }
      REQUIRE(!w->sync());
    }
    auto lite = test::must(storage::sql_store::open(dir.path() + "/a.sqlite"));
    REQUIRE(test::must(lite->spool(log)) == 440);
    auto a = everything(*lite);
    CHECK(a["httplog_request"].size() == 392);
    auto copy = test::must(storage::sql_store::open(pg.create_database("by_copy")));
    CHECK(test::must(copy->spool(log)) == 440);
    test::check_same(a, everything(*copy), "SQLite", "PostgreSQL (COPY)");
    {
      setenv("COMB_PG_COPY", "0", 1);
      auto text = test::must(storage::sql_store::open(pg.create_database("by_sql")));
      unsetenv("COMB_PG_COPY");
      CHECK(test::must(text->spool(log)) == 440);
      test::check_same(a, everything(*text), "SQLite", "PostgreSQL (SQL text)");
    }
    // A spooler that lost its place (the state rows set back) spools everything again: every
    // row is there once, as before.
    REQUIRE(copy->query("UPDATE spool_state SET last_lsn = 0"));
    REQUIRE(copy->query("UPDATE spool_nodes SET last_lsn = 0"));
    CHECK(test::must(copy->spool(log)) == 440);
    test::check_same(a, everything(*copy), "SQLite", "PostgreSQL (COPY, spooled twice)");
  }

  TEST_CASE("PostgreSQL: a server that is not there is a clear error") {
    auto port = test::free_port();
    auto s = storage::sql_store::open("postgresql://comb:secret@127.0.0.1:" + std::to_string(port)
                                      + "/postgres");
    REQUIRE(!s);
    CHECK(is(s.error(), errc::unavailable));
    auto text = describe(s.error());
    CHECK(text.find("cannot connect to PostgreSQL") != std::string::npos);
    CHECK(text.find("secret") == std::string::npos);
    CHECK(storage::sql_store::display("postgresql://u:pw@h:1/d") == "postgresql://u:***@h:1/d");
  }
  TEST_CASE("private arguments, results, fields and row keys are masked; masks of one value "
            "are equal, so current rows and joins still work") {
    test::temp_dir dir;
    auto log = dir.path() + "/log";
    {
      auto w = test::must(storage::log_writer::open(log));
      auto login = [](uint64_t exec, const std::string& session, int64_t ts) {
        auto r = invocation(exec, "app.login", "app", ts,
                            {{"app.sessions", session, op::insert, {{"user", "u1"}}}});
        r.payload = json{{"session", session}, {"hash", "H-secret"}, {"user", "u1"}}.dump();
        return r;
      };
      std::vector<storage::log_record> all;
      all.push_back(invocation(1, "app.register", "app", 1000,
                               {{"app.users", "u1", op::insert,
                                 {{"hash", "H-secret"}, {"salt", "s1"}, {"n", 7}}}}));
      all.back().payload = json{{"hash", "H-secret"}, {"user", "u1"}}.dump();
      all.push_back(login(2, "S-one", 2000));
      all.push_back(login(3, "S-two", 3000));
      all.push_back(invocation(4, "app.post", "app", 4000,
                               {{"app.posts", "p1", op::insert, {{"text", "hi"}}}},
                               {{"app.sessions", "S-two"}}));
      all.back().payload = json{{"session", "S-two"}, {"text", "hi"}}.dump();
      all.push_back(invocation(5, "app.logout", "app", 5000,
                               {{"app.sessions", "S-one", op::del, nullptr}}));
      all.back().payload = json{{"session", "S-one"}}.dump();
      all.push_back(invocation(6, "app.get", "app", 6000, {}));
      all.back().result = json{{"hash", "H-secret"}, {"user", "u1"}}.dump();
      all.push_back(invocation(7, "app.fail", "app", 7000, {}));
      all.back().payload = "not JSON S-one"; // kept: no fields to find (an error's text)
      all.back().result = "permission denied";
      for (auto& r : all) {
        r.lsn = w->next_lsn();
        REQUIRE(!w->append(r.lsn, storage::encode(r)));
      }
      REQUIRE(!w->sync());
    }
    auto s = test::must(storage::sql_store::open(dir.path() + "/p.sqlite"));
    storage::spool_privacy p;
    p.args["app.register"] = {"hash"};
    p.args["app.login"] = {"hash", "session"};
    p.args["app.post"] = {"session"};
    p.args["app.logout"] = {"session"};
    p.results["app.get"] = {"hash"};
    p.fields["app.users"] = {"hash"};
    p.keys = {"app.sessions"};
    CHECK(s->set_privacy(p)); // no mask: refused
    p.mask = [](std::string_view v) {
      return "[private:" + std::to_string(std::hash<std::string_view>{}(v) % 100000) + "]";
    };
    auto mask = p.mask;
    REQUIRE(!s->set_privacy(p));
    CHECK(test::must(s->spool(log)) == 7);
    auto rows = [&](const std::string& sql) {
      auto r = s->query(sql);
      REQUIRE_MESSAGE(r, sql << ": " << test::why(r));
      return *r;
    };
    // No secret in any text cell of any table (the last record's unparsed text aside).
    size_t cells = 0;
    for (auto& t : rows("SELECT name FROM sqlite_master WHERE type = 'table'"))
      for (auto& row : rows("SELECT * FROM \"" + t["name"].get<std::string>() + "\""))
        for (auto& [col, v] : row.items()) {
          if (!v.is_string() || v == "not JSON S-one")
            continue;
          ++cells;
          for (auto* secret : {"H-secret", "S-one", "S-two"})
            CHECK_MESSAGE(v.get<std::string>().find(secret) == std::string::npos,
                          t["name"] << "." << col << " holds " << secret << ": " << v);
        }
    CHECK(cells > 50);
    // The current rows: S-one's deleted by its masked key, S-two's there.
    auto live = rows("SELECT row_key, user FROM app_sessions");
    REQUIRE(live.size() == 1);
    CHECK(live[0]["row_key"] == mask("S-two"));
    CHECK(live[0]["user"] == "u1");
    auto users = rows("SELECT hash, salt, n FROM app_users");
    CHECK(users[0]["hash"] == mask("H-secret"));
    CHECK(users[0]["salt"] == "s1");
    CHECK(users[0]["n"] == 7);
    // The masked session of a call joins to its row, and to what read it.
    CHECK(rows("SELECT COUNT(*) AS n FROM func_invocations f JOIN app_sessions s ON "
               "json_extract(f.args, '$.session') = s.row_key WHERE f.procedure <> "
               "'app.fail'")[0]["n"] == 2);
    CHECK(rows("SELECT COUNT(*) AS n FROM row_reads r JOIN app_sessions s ON "
               "r.row_key = s.row_key")[0]["n"] == 1);
    auto args = json::parse(
      rows("SELECT args FROM func_invocations WHERE procedure = 'app.login' ORDER BY lsn")[0]
          ["args"]
        .get<std::string>());
    CHECK(args["user"] == "u1");
    CHECK(args["hash"] == mask("H-secret"));
    CHECK(rows("SELECT payload FROM messages WHERE procedure = 'app.get' AND kind = 'reply'")[0]
            ["payload"]
          == json{{"hash", mask("H-secret")}, {"user", "u1"}}.dump());
    CHECK(rows("SELECT result FROM func_invocations WHERE procedure = 'app.fail'")[0]["result"]
          == "permission denied");
  }
}
