// End-to-end provenance: a node with a provenance log under a concurrent randomized workload;
// replay gives the original digest (and, with --until, a past state); the spooled SQL store
// answers the paper's questions; a kill between commit and log append loses nothing.
#include "apps/bank/bank.hpp"
#include "base/base64.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "node/client.hpp"
#include "base/errc.hpp"
#include "base/wall_clock.hpp"
#include "node/load_driver.hpp"
#include "node/node.hpp"
#include "runtime/provenance/provenance_recorder.hpp"
#include "runtime/provenance/replay.hpp"
#include "runtime/system_config.hpp"
#include "base/json_text.hpp"
#include "storage/log_record.hpp"
#include "storage/provenance_log.hpp"
#include "storage/record_value.hpp"
#include "storage/sql_store.hpp"
#include "storage/transaction.hpp"
#include "tests/client_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace comb;
using nlohmann::json;

namespace {

std::shared_ptr<runtime::procedure_registry> procs() {
  auto p = std::make_shared<runtime::procedure_registry>();
  apps::bank::register_bank(*p);
  return p;
}

runtime::node_config config(const std::string& dir, bool reads = false) {
  runtime::node_config c;
  c.data_dir = dir + "/data";
  c.provenance_dir = dir + "/log";
  c.durability = storage::durability::async;
  c.record_reads = reads;
  return c;
}

// Random opens and transfers (some fail: unknown accounts, insufficient funds).
runtime::invocation random_call(uint64_t i, uint64_t salt) {
  uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ salt;
  x ^= x >> 29;
  runtime::invocation inv;
  if (x % 10 == 0) {
    inv.procedure = "bank.open";
    inv.role = "admin";
    inv.args = {{"account", "r" + std::to_string(salt) + "-" + std::to_string(i)},
                {"balance", static_cast<int64_t>(x % 500)}};
  } else {
    inv.procedure = "bank.transfer";
    inv.role = "teller";
    inv.args = {{"id", std::to_string(salt) + "-" + std::to_string(i)},
                {"from", "a" + std::to_string(x % 23)},
                {"to", "a" + std::to_string((x >> 8) % 23)},
                {"amount", static_cast<int64_t>(1 + (x >> 16) % 300)}};
  }
  return inv;
}

uint64_t last_lsn(const std::string& log) {
  storage::log_stats st;
  auto r = test::must(storage::log_reader::open(log));
  REQUIRE(!r.for_each(
    0, [](auto&&) { return true; }, &st));
  return st.last_lsn;
}

// The largest timestamp of any record in the log.
int64_t last_timestamp(const std::string& log) {
  int64_t last = 0;
  auto r = test::must(storage::log_reader::open(log));
  REQUIRE(!r.for_each(0, [&](storage::log_record&& rec) {
    last = std::max(last, rec.timestamp_ns);
    return true;
  }));
  return last;
}

} // namespace

TEST_SUITE("runtime.provenance.recorder") {
  TEST_CASE("each record holds exactly its own row changes, invocation after invocation on one "
            "thread (the record and its changes are reused)") {
    test::temp_dir dir;
    runtime::system_config cfg{1};
    caf::actor_system sys{cfg};
    auto node = test::must(runtime::node::start(sys, config(dir.path()), procs()));
    const std::string b = "b-with-a-name-longer-than-fifteen-bytes";
    auto call = [&](const char* proc, json args, const char* role) {
      auto r = node->call(proc, std::move(args), role);
      REQUIRE_MESSAGE(r, describe(r.error()));
    };
    call("bank.open", {{"account", "a"}, {"balance", 100}}, "admin");
    call("bank.open", {{"account", b}, {"balance", 5}}, "admin");
    call("bank.transfer", {{"id", "t1"}, {"from", "a"}, {"to", b}, {"amount", 7}}, "teller");
    call("bank.open", {{"account", "c"}, {"balance", 1}}, "admin");
    call("bank.transfer", {{"id", "t2"}, {"from", b}, {"to", "a"}, {"amount", 1}}, "teller");
    node->recorder()->flush();
    using op = storage::row_change::op;
    struct change {
      std::string table, key;
      op kind;
      json row; // the transfer rows: only their amount is checked
    };
    std::vector<std::vector<change>> expected{
      {{"bank.accounts", "a", op::insert, {{"balance", 100}}}},
      {{"bank.accounts", b, op::insert, {{"balance", 5}}}},
      {{"bank.transfers", "t1", op::insert, 7},
       {"bank.accounts", "a", op::update, {{"balance", 93}}},
       {"bank.accounts", b, op::update, {{"balance", 12}}}},
      {{"bank.accounts", "c", op::insert, {{"balance", 1}}}},
      {{"bank.transfers", "t2", op::insert, 1},
       {"bank.accounts", b, op::update, {{"balance", 11}}},
       {"bank.accounts", "a", op::update, {{"balance", 94}}}},
    };
    std::vector<std::vector<storage::row_change>> got;
    auto r = test::must(storage::log_reader::open(dir.path() + "/log"));
    REQUIRE(!r.for_each(0, [&](storage::log_record&& rec) {
      if (rec.kind == storage::log_record::kind_t::invocation && rec.status == "ok")
        got.push_back(std::move(rec.changes));
      return true;
    }));
    REQUIRE(got.size() == expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      REQUIRE(got[i].size() == expected[i].size());
      for (size_t j = 0; j < got[i].size(); ++j) {
        CAPTURE(j);
        const auto& g = got[i][j];
        const auto& e = expected[i][j];
        CHECK(g.table == e.table);
        CHECK(g.key == e.key);
        CHECK(g.kind == e.kind);
        CHECK(g.is_row);
        json row;
        REQUIRE(storage::transaction::decode_row(g.value, row));
        if (e.table == "bank.transfers")
          CHECK(row["amount"] == e.row);
        else
          CHECK(row == e.row);
      }
    }
  }

  TEST_CASE("replay of a concurrent randomized workload gives the original digest; --until "
            "gives a past state") {
    test::temp_dir dir;
    auto cfg = config(dir.path());
    std::string digest1, digest2;
    uint64_t lsn1 = 0;
    int64_t time1 = 0;
    {
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      auto n = test::must(runtime::node::start(sys, cfg, procs()));
      for (int i = 0; i < 20; ++i)
        REQUIRE(
          n->call("bank.open", {{"account", "a" + std::to_string(i)}, {"balance", 1000}}, "admin"));
      auto r1 = runtime::drive(sys, n->route(), 32, 3000,
                               [](uint64_t i) { return random_call(i, 1); });
      CHECK(r1.ok > 1000);
      CHECK(r1.failed > 0); // the workload includes refused calls
      n->recorder()->flush();
      lsn1 = last_lsn(cfg.provenance_dir);
      digest1 = test::must(n->db().digest());
      // The cut in time is the latest record's time so far. The next records must come later:
      // wait until the clock (read on any thread, within a millisecond of the system clock) is
      // safely past it.
      time1 = last_timestamp(cfg.provenance_dir);
      REQUIRE(test::wait_until([&] { return wall_clock_ns() > time1 + 5'000'000; },
                               std::chrono::seconds{10}, "the clock to pass the first half's end"));
      auto r2 = runtime::drive(sys, n->route(), 32, 3000,
                               [](uint64_t i) { return random_call(i, 2); });
      CHECK(r2.ok > 1000);
      n->stop();
      digest2 = test::must(n->db().digest());
    }
    CHECK(digest1 != digest2);
    auto reg = procs();
    runtime::replay_options all;
    all.log_dir = cfg.provenance_dir;
    all.into_dir = dir.path() + "/replay-all";
    auto rep = test::must(runtime::replay(*reg, all));
    CHECK(rep.digest == digest2);
    CHECK(rep.applied > 2000);

    runtime::replay_options past = all;
    past.into_dir = dir.path() + "/replay-lsn";
    past.until_lsn = lsn1;
    CHECK(test::must(runtime::replay(*reg, past)).digest == digest1);

    runtime::replay_options at_time = all;
    at_time.into_dir = dir.path() + "/replay-time";
    at_time.until_ns = time1;
    CHECK(test::must(runtime::replay(*reg, at_time)).digest == digest1);

    // An existing folder is refused; so is a damaged log, before anything is written.
    auto again = runtime::replay(*reg, all);
    REQUIRE(!again);
    CHECK(describe(again.error()).find("new or empty") != std::string::npos);
    auto seg = test::must(storage::log_reader::open(cfg.provenance_dir)).segments().front();
    {
      std::fstream f{cfg.provenance_dir + "/" + seg,
                     std::ios::in | std::ios::out | std::ios::binary};
      f.seekp(storage::segment_header_bytes + 100);
      f.write("\x13\x37\x13\x37", 4);
    }
    runtime::replay_options bad = all;
    bad.into_dir = dir.path() + "/replay-bad";
    auto refused = runtime::replay(*reg, bad);
    REQUIRE(!refused);
    CHECK(describe(refused.error()).find("refusing to replay") != std::string::npos);
    CHECK(describe(refused.error()).find(seg) != std::string::npos);
    CHECK(!std::filesystem::exists(bad.into_dir));
  }

  TEST_CASE("replay of a model activation whose load call holds its payload in the blob store") {
    // Before: a payload above blob_inline_max lives in the blob store and its row holds where;
    // the replayed put_blob appended it elsewhere, and replay reported a divergence.
    test::temp_dir dir;
    auto cfg = config(dir.path());
    std::string digest;
    {
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      auto n = test::must(runtime::node::start(sys, cfg, procs()));
      std::string bytes(200000, '\0');
      for (size_t i = 0; i < bytes.size(); ++i)
        bytes[i] = static_cast<char>((i * 2654435761u) >> 13);
      REQUIRE(n->call(
        "comb.model.put_chunk",
        {{"name", "m"}, {"version", 1}, {"chunk_no", 0}, {"data", base64_encode(bytes)}}, "admin"));
      auto put = n->call("comb.model.put",
                         {{"name", "m"},
                          {"version", 1},
                          {"chunk_count", 1},
                          {"kind", "raw"},
                          {"digest", runtime::model_digest(bytes.data(), bytes.size())}},
                         "admin");
      REQUIRE_MESSAGE(put, test::why(put));
      auto act = n->call("comb.model.activate", {{"name", "m"}, {"version", 1}}, "admin");
      REQUIRE_MESSAGE(act, test::why(act));
      n->stop();
      digest = test::must(n->db().digest());
    }
    runtime::replay_options all;
    all.log_dir = cfg.provenance_dir;
    all.into_dir = dir.path() + "/replay";
    // The chunk (200 KB, above the threshold) is logged as its digest: its bytes come from
    // the source folder's model store.
    all.source_data = cfg.data_dir;
    auto rep = runtime::replay(*procs(), all);
    REQUIRE_MESSAGE(rep, test::why(rep));
    CHECK(rep->digest == digest);
  }

  TEST_CASE("the spooled SQL store answers the provenance questions; re-spooling adds nothing") {
    test::temp_dir dir;
    auto cfg = config(dir.path(), /*reads=*/true);
    int64_t t0 = 0;
    {
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      auto n = test::must(runtime::node::start(sys, cfg, procs()));
      t0 = std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
             .count();
      REQUIRE(n->call("bank.open", {{"account", "a"}, {"balance", 100}}, "admin"));
      REQUIRE(n->call("bank.open", {{"account", "b"}, {"balance", 100}}, "admin"));
      REQUIRE(n->call("bank.transfer", {{"id", "t1"}, {"from", "a"}, {"to", "b"}, {"amount", 5}},
                      "teller"));
      REQUIRE(n->call("bank.balance", {{"account", "b"}}, "auditor"));
      CHECK(!n->call("bank.open", {{"account", "c"}, {"balance", 1}}, "auditor")); // denied
    }
    auto sqlite = dir.path() + "/prov.sqlite";
    auto store = test::must(storage::sql_store::open(sqlite));
    auto n1 = test::must(store->spool(cfg.provenance_dir));
    CHECK(n1 == 5); // one record per invocation (the call and its reply)
    CHECK(test::must(store->spool(cfg.provenance_dir)) == 0);
    auto count = [&](const char* t) {
      return test::must(store->query(std::string{"SELECT COUNT(*) AS n FROM "} + t))[0]["n"];
    };
    CHECK(count("func_invocations") == 5);
    CHECK(count("messages") == 10);
    auto denied = test::must(
      store->query("SELECT role FROM func_invocations WHERE status = 'permission_denied'"));
    REQUIRE(denied.size() == 1);
    CHECK(denied[0]["role"] == "auditor");
    CHECK(count("bank_accounts_events") == 4); // 2 inserts, 2 updates
    auto ev = test::must(store->query(
      "SELECT balance FROM bank_accounts_events WHERE row_key = 'b' ORDER BY lsn DESC LIMIT 1"));
    CHECK(ev[0]["balance"] == 105);
    // A fresh store spooled from the same log has exactly the same rows.
    auto other = test::must(storage::sql_store::open(dir.path() + "/other.sqlite"));
    CHECK(test::must(other->spool(cfg.provenance_dir)) == n1);

    // Q1: last writer of a table; table with the most updates in a time frame.
    auto lw = test::must(store->query(storage::prov_sql::last_writer, {"bank.accounts"}));
    REQUIRE(lw.size() == 1);
    CHECK(lw[0]["procedure"] == "bank.transfer");
    CHECK(lw[0]["role"] == "teller");
    auto hot = test::must(store->query(storage::prov_sql::most_updated_table,
                                       {std::to_string(t0), "9223372036854775807"}));
    CHECK(hot[0]["table_name"] == "bank.accounts");
    CHECK(test::must(store->query(storage::prov_sql::most_updated_table, {"0", "1"})).empty());
    // Q2: rows a user read or wrote; users who read a row.
    auto rows = test::must(
      store->query(storage::prov_sql::rows_of_user, {"teller", "0", "9223372036854775807"}));
    std::set<std::string> touched;
    for (auto& r : rows)
      touched.insert(r["access"].get<std::string>() + ":" + r["table_name"].get<std::string>() + "/"
                     + r["row_key"].get<std::string>());
    CHECK(touched
          == std::set<std::string>{"read:bank.accounts/a", "read:bank.accounts/b",
                                   "write:bank.accounts/a", "write:bank.accounts/b",
                                   "write:bank.transfers/t1"});
    auto readers = test::must(
      store->query(storage::prov_sql::readers_of_row, {"bank.accounts", "b"}));
    REQUIRE(readers.size() == 2);
    CHECK(readers[0]["role"] == "auditor");
    CHECK(readers[1]["role"] == "teller");
    // Q3: downstream and upstream of a row.
    auto down = test::must(store->query(storage::prov_sql::downstream, {"bank.accounts", "a"}));
    std::set<std::string> d;
    for (auto& r : down)
      d.insert(r["table_name"].get<std::string>() + "/" + r["row_key"].get<std::string>());
    CHECK(d == std::set<std::string>{"bank.accounts/b", "bank.transfers/t1"});
    auto up = test::must(store->query(storage::prov_sql::upstream, {"bank.transfers", "t1"}));
    std::set<std::string> u;
    for (auto& r : up)
      u.insert(r["table_name"].get<std::string>() + "/" + r["row_key"].get<std::string>());
    CHECK(u == std::set<std::string>{"bank.accounts/a", "bank.accounts/b"});
    // Invalid SQL gets a clear error.
    auto bad = store->query("SELEKT 1");
    REQUIRE(!bad);
    CHECK(is(bad.error(), errc::invalid_argument));
  }

  TEST_CASE("a kill between commit and log append loses no committed transaction") {
    test::temp_dir dir;
    auto data = dir.path() + "/node";
    runtime::system_config sc{2};
    caf::actor_system sys{sc};
    auto start = [&](bool arm, int port, const std::string& log) {
      if (arm) {
        setenv("COMB_KILL_AT", "provenance.after_commit", 1);
        setenv("COMB_KILL_AFTER", "40", 1);
      }
      auto p = std::make_unique<test::child_process>(
        std::vector<std::string>{test::comb_binary(), "node", "--data", data, "--listen",
                                 "127.0.0.1:" + std::to_string(port), "--durability", "sync",
                                 "--spool", "none"},
        log);
      unsetenv("COMB_KILL_AT");
      unsetenv("COMB_KILL_AFTER");
      return p;
    };
    int port = test::free_port();
    auto node = start(true, port, dir.path() + "/n1.log");
    auto c = test::connect_retry(sys, port);
    REQUIRE_MESSAGE(c, test::why(c));
    REQUIRE(c->call("bank.open", R"({"account":"a","balance":100000})", "admin"));
    REQUIRE(c->call("bank.open", R"({"account":"b","balance":100000})", "admin"));
    int acked = 0;
    for (int i = 0; i < 100; ++i) {
      auto r = c->call(
        "bank.transfer",
        json{{"id", "t" + std::to_string(i)}, {"from", "a"}, {"to", "b"}, {"amount", 1}}.dump(),
        "teller", std::chrono::seconds{5});
      if (!r)
        break;
      ++acked;
    }
    int status = node->wait();
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK(acked < 100);

    int port2 = test::free_port();
    auto node2 = start(false, port2, dir.path() + "/n2.log");
    auto c2 = test::connect_retry(sys, port2);
    REQUIRE_MESSAGE(c2, test::why(c2));
    auto total = test::must(c2->call("bank.total", "{}", "auditor"));
    CHECK(total["total"] == 200000);
    node2->kill(SIGTERM);
    std::ifstream lf{dir.path() + "/n2.log"};
    std::string startup{std::istreambuf_iterator<char>{lf}, {}};
    CAPTURE(startup);
    // At least the one killed between its commit and its append; the writer batches, so the
    // records committed just before it may be missing from the log too.
    auto at = startup.find("provenance log: appended ");
    REQUIRE(at != std::string::npos);
    CHECK(std::stoi(startup.substr(at + 25)) >= 1);

    // Every transfer in the database has its invocation, with its row changes, in the log.
    std::set<std::string> logged;
    auto reader = test::must(storage::log_reader::open(data + "/provenance"));
    REQUIRE(!reader.for_each(0, [&](storage::log_record&& r) {
      for (auto& ch : r.changes)
        if (ch.table == "bank.transfers")
          logged.insert(ch.key);
      return true;
    }));
    auto db = test::must(storage::database::open(data));
    auto txn = db->begin();
    std::set<std::string> stored;
    REQUIRE(!txn->scan("bank.transfers", "", "", [&](auto k, auto) {
      stored.insert(std::string{k});
      return true;
    }));
    CHECK(stored.size() == static_cast<size_t>(acked) + 1); // the one killed before its reply
    CHECK(stored == logged);
    CHECK(test::must(storage::verify_log(data + "/provenance")).records > 0);
  }

  TEST_CASE("recovery rebuilds each record's rows from its WAL entry: every kind of write, "
            "concurrent commits") {
    // Records whose transactions committed but never reached the log (as in a crash between
    // commit and append) are rebuilt from the WAL: the head the transaction carried and the
    // writes in its entry. Several threads commit at once, so that write groups put several
    // transactions in one WAL batch.
    test::temp_dir dir;
    storage::options opts;
    opts.keep_wal_seconds = runtime::provenance_recorder::keep_wal_seconds;
    auto db = test::must(storage::database::open(dir.path() + "/db", opts));
    REQUIRE(!db->create_table("rows"));
    REQUIRE(!db->create_table("raw"));
    REQUIRE(!db->create_table("files", storage::table_kind::blobs));
    runtime::provenance_recorder::options ro;
    ro.log_dir = dir.path() + "/log";
    auto rec = test::must(runtime::provenance_recorder::open(*db, ro));
    std::atomic<uint64_t> ids{1};
    // Runs one transaction; `logged` says whether after_commit runs (false: a crash after the
    // commit). Returns the record's changes as the log should hold them.
    // Each thread commits on a partition of its own, as a node's state actors do (the lsn a
    // partition took last is one row, which serializes the transactions of one partition).
    auto run = [&](const std::function<void(storage::transaction&)>& body, bool logged,
                   uint32_t partition = 0) {
      auto txn = db->begin();
      body(*txn);
      runtime::invocation_record r;
      r.execution_id = ids++;
      r.procedure = "test.write";
      r.role = "tester";
      r.args = "{}";
      r.result = "null";
      r.status = "ok";
      r.partition = partition;
      r.changes = txn->take_changes();
      rec->before_commit(*txn, r);
      REQUIRE(!txn->commit());
      if (logged)
        rec->after_commit(r, true);
      return std::make_pair(r.execution_id, r.changes);
    };
    std::string big(100 << 10, 'b'); // past blob_inline_max: in a blob segment
    run(
      [&](auto& t) {
        REQUIRE(!t.put_row("rows", "old", json{{"v", 1}}));
        REQUIRE(!t.put_row("rows", "doomed", json{{"v", 2}}));
        REQUIRE(!t.put_blob("files", "replaced", big));
      },
      true);
    std::map<uint64_t, std::vector<runtime::row_change>> expected;
    std::mutex mtx;
    constexpr int threads = 6, per_thread = 60;
    auto crashed = [&](int thread) {
      for (int i = 0; i < per_thread; ++i) {
        auto k = std::to_string(thread) + "-" + std::to_string(i);
        auto [id, changes] = run(
          [&](auto& t) {
            REQUIRE(!t.insert_row("rows", "new-" + k, json{{"k", k}}));
            REQUIRE(!t.put("raw", "r-" + k, std::string("\0\x01raw", 5)));
            if (i % 10 == 0) {
              REQUIRE(!t.put_blob("files", "small-" + k, "tiny"));
              REQUIRE(!t.put_blob("files", "big-" + k, big + k));
            }
            if (i % 10 == 5)
              REQUIRE(!t.del_blob("files",
                                  "big-" + std::to_string(thread) + "-" + std::to_string(i - 5)));
            if (thread == 0 && i == 1) {
              REQUIRE(!t.put_row("rows", "old", json{{"v", 10}}));
              REQUIRE(!t.del("rows", "doomed"));
              REQUIRE(!t.put_blob("files", "replaced", "now small"));
            }
          },
          false, static_cast<uint32_t>(thread));
        std::lock_guard guard{mtx};
        expected.emplace(id, std::move(changes));
      }
    };
    std::vector<std::thread> committers;
    for (int t = 0; t < threads; ++t)
      committers.emplace_back(crashed, t);
    for (auto& t : committers)
      t.join();
    // Write groups did put several transactions in one WAL batch.
    int merged = 0;
    REQUIRE(!db->scan_wal(0, [&](std::string_view blob, const auto& before) {
      auto head = storage::decode_head(blob.substr(4));
      if (head && before.size() > head->row_flags.size())
        ++merged;
    }));
    CHECK(merged > 0);
    rec->close();
    rec.reset();
    // The crash left no checkpoint: recovery reads every WAL entry kept.
    std::filesystem::remove(ro.log_dir + "/wal_checkpoint");
    rec = test::must(runtime::provenance_recorder::open(*db, ro));
    CHECK(rec->recovery_note().find("appended " + std::to_string(threads * per_thread)
                                    + " committed invocation(s)")
          != std::string::npos);
    rec->close();
    size_t seen = 0;
    auto reader = test::must(storage::log_reader::open(ro.log_dir));
    REQUIRE(!reader.for_each(0, [&](storage::log_record&& r) {
      auto e = expected.find(r.execution_id);
      if (e == expected.end())
        return true; // the first, logged as usual
      ++seen;
      CAPTURE(r.execution_id);
      REQUIRE(r.changes.size() == e->second.size());
      for (size_t i = 0; i < r.changes.size(); ++i) {
        CAPTURE(i);
        CHECK(r.changes[i].table == e->second[i].table);
        CHECK(r.changes[i].key == e->second[i].key);
        CHECK(r.changes[i].kind == e->second[i].kind);
        CHECK(r.changes[i].is_row == e->second[i].is_row);
        CHECK(r.changes[i].value == e->second[i].value);
      }
      return true;
    }));
    CHECK(seen == expected.size());
  }

  TEST_CASE("a log and WAL heads of format 1 (an older build) are recovered and continued") {
    // An older build wrote its log and the heads in the WAL as Cap'n Proto (format 1); it
    // died after committing two transactions whose records the log lacks. This build rebuilds
    // them from the old heads and goes on in format 2; the log reads whole.
    test::temp_dir dir;
    storage::options opts;
    opts.keep_wal_seconds = runtime::provenance_recorder::keep_wal_seconds;
    auto db = test::must(storage::database::open(dir.path() + "/db", opts));
    REQUIRE(!db->create_table("rows"));
    auto log_dir = dir.path() + "/log";
    auto record = [](uint64_t lsn, std::vector<runtime::row_change> changes) {
      storage::log_record r;
      r.lsn = lsn;
      r.kind = storage::log_record::kind_t::invocation;
      r.execution_id = 100 + lsn;
      r.procedure = "test.write";
      r.role = "tester";
      r.payload = "{\"n\":" + std::to_string(lsn) + "}";
      r.result = "null";
      r.status = "ok";
      r.changes = std::move(changes);
      return r;
    };
    {
      auto w = test::must(storage::log_writer::open(log_dir));
      for (uint64_t lsn = 1; lsn <= 2; ++lsn)
        REQUIRE(!w->append(lsn, storage::encode_v1(record(lsn, {}))));
      REQUIRE(!w->sync());
    }
    std::map<uint64_t, std::vector<runtime::row_change>> committed;
    for (uint64_t lsn = 3; lsn <= 4; ++lsn) {
      auto txn = db->begin();
      REQUIRE(!txn->put_row("rows", "k" + std::to_string(lsn), json{{"v", lsn}}));
      REQUIRE(!txn->put("rows", "raw" + std::to_string(lsn), std::string("\0\x01", 2)));
      auto head = record(lsn, {});
      committed[lsn] = txn->take_changes();
      for (auto& c : committed[lsn])
        head.row_flags.push_back(static_cast<char>(storage::row_flag(c)));
      txn->put_log_data("CPRV" + storage::encode_v1(head));
      REQUIRE(!txn->commit());
    }
    runtime::provenance_recorder::options ro;
    ro.log_dir = log_dir;
    auto rec = test::must(runtime::provenance_recorder::open(*db, ro));
    CHECK(rec->recovery_note().find("appended 2 committed invocation(s)") != std::string::npos);
    {
      auto txn = db->begin();
      REQUIRE(!txn->put_row("rows", "new", json{{"v", 5}}));
      runtime::invocation_record r;
      r.execution_id = 105;
      r.procedure = "test.write";
      r.role = "tester";
      r.args = "{}";
      r.result = "null";
      r.status = "ok";
      r.changes = txn->take_changes();
      committed[5] = r.changes;
      rec->before_commit(*txn, r);
      REQUIRE(!txn->commit());
      rec->after_commit(r, true);
    }
    rec->close();
    rec.reset();
    uint64_t expect = 1;
    auto reader = test::must(storage::log_reader::open(log_dir));
    REQUIRE(!reader.for_each(0, [&](storage::log_record&& r) {
      CAPTURE(r.lsn);
      CHECK(r.lsn == expect++);
      CHECK(r.execution_id == 100 + r.lsn);
      auto& want = committed[r.lsn];
      REQUIRE(r.changes.size() == want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        CHECK(r.changes[i].table == want[i].table);
        CHECK(r.changes[i].key == want[i].key);
        CHECK(r.changes[i].kind == want[i].kind);
        CHECK(r.changes[i].is_row == want[i].is_row);
        CHECK(r.changes[i].value == want[i].value);
      }
      return true;
    }));
    CHECK(expect == 6);
    CHECK(test::must(storage::verify_log(log_dir)).records == 5);
  }

  TEST_CASE("restarts append nothing twice: the WAL checkpoint, and the lsn check without it") {
    test::temp_dir dir;
    auto cfg = config(dir.path());
    runtime::system_config sc{2};
    caf::actor_system sys{sc};
    int runs = 0;
    auto run = [&](int calls) {
      auto n = test::must(runtime::node::start(sys, cfg, procs()));
      auto prefix = "r" + std::to_string(++runs) + "-";
      for (int i = 0; i < calls; ++i)
        test::must(n->call("bank.open",
                           json{{"account", prefix + std::to_string(i)}, {"balance", 1}}, "admin"));
      n.reset();
    };
    auto executions = [&] {
      std::vector<uint64_t> ids;
      auto reader = test::must(storage::log_reader::open(cfg.provenance_dir));
      REQUIRE(!reader.for_each(0, [&](storage::log_record&& r) {
        ids.push_back(r.execution_id);
        return true;
      }));
      return ids;
    };
    run(5);
    REQUIRE(std::filesystem::exists(cfg.provenance_dir + "/wal_checkpoint"));
    run(0);
    CHECK(executions().size() == 5);
    // Without the checkpoint, recovery reads the whole WAL kept and still adds nothing: every
    // record there has an lsn the log already holds.
    std::filesystem::remove(cfg.provenance_dir + "/wal_checkpoint");
    run(3);
    auto ids = executions();
    CHECK(ids.size() == 8);
    CHECK(std::set<uint64_t>(ids.begin(), ids.end()).size() == ids.size());
    // A damaged checkpoint is named, not ignored.
    {
      std::ofstream bad{cfg.provenance_dir + "/wal_checkpoint", std::ios::trunc};
      bad << "garbage";
    }
    auto refused = runtime::node::start(sys, cfg, procs());
    REQUIRE(!refused);
    CHECK(describe(refused.error()).find("wal_checkpoint") != std::string::npos);
  }


  TEST_CASE("arguments and results kept as MessagePack read back as the JSON text of before") {
    std::vector<json> values = {
      json::object(),
      json::array(),
      nullptr,
      true,
      false,
      json{{"id", "t-1"}, {"from", "acct-3"}, {"to", "acct-4"}, {"amount", 17}},
      json{{"n", json::array({0, 127, 128, 255, 256, 65535, 65536, 4294967295u, 4294967296u,
                              UINT64_MAX})}},
      json{{"neg", json::array({-1, -32, -33, -128, -129, -32768, -32769, INT32_MIN,
                                int64_t{INT32_MIN} - 1, INT64_MIN})}},
      json{{"f", json::array({0.1, -0.0, 1e300, 3.0, -2.5e-308, 123456.789})}},
      json{{"s", std::string(31, 'a')}, {"t", std::string(32, 'b')}, {"u", std::string(300, 'c')},
           {"v", std::string(70000, 'd')}},
      json{{"quote\"d", "back\\slash"}, {"ctl", std::string{"a\x01\n\tb"}}, {"", ""}},
      json{{"deep", json{{"a", json::array({json::object(), json{{"b", json::array({1, "x"})}}})}}}},
      json::array({json::array({json::array({json::array({1})})})}),
    };
    json many = json::object();
    for (int i = 0; i < 40; ++i)
      many["k" + std::to_string(i)] = i;
    values.push_back(many);
    values.push_back(json(std::vector<int>(40, 7)));
    for (const auto& v : values) {
      CAPTURE(v.dump());
      auto text = comb::json_text(v);
      storage::invocation_record rec;
      rec.procedure = "bank.transfer";
      rec.status = "ok";
      storage::append_record_value(rec.args, v);
      storage::append_record_value(rec.result, v);
      REQUIRE(storage::is_msgpack_value(rec.args));
      CHECK(storage::record_value_text(rec.args) == text);
      rec.changes.push_back({"t", "k", storage::row_change::op::update, true, "v"});
      auto whole = storage::encode(rec);
      CHECK((static_cast<uint8_t>(whole[12]) & 24) == 24); // both fields flagged MessagePack
      auto d = storage::decode(whole);
      REQUIRE(d);
      CHECK(d->payload == text);
      CHECK(d->result == text);
      std::string w2 = "old contents, longer than the front";
      auto head_size = storage::encode_committed(w2, rec, 4);
      CHECK(w2.substr(4) == whole);
      auto h = storage::decode_head(std::string_view{w2}.substr(4, head_size - 4));
      REQUIRE(h);
      CHECK(h->payload == text);
      CHECK(h->result == text);
      CHECK(storage::to_log_record(rec).payload == text);
      auto v1 = storage::decode(storage::encode_v1(storage::to_log_record(rec)));
      REQUIRE(v1);
      CHECK(v1->payload == text);
    }
    // A string with bytes outside ASCII is kept as JSON text (json_text validates UTF-8).
    json utf8 = json{{"name", "caf\xc3\xa9"}};
    std::string field;
    storage::append_record_value(field, utf8);
    CHECK(field == comb::json_text(utf8));
    json bad = json{{"name", std::string{"\xff\xfe"}}};
    std::string bad_field;
    CHECK_THROWS(storage::append_record_value(bad_field, bad));
  }

  TEST_CASE("records whose arguments are JSON text (older logs) read as before; bad MessagePack "
            "is corrupt data") {
    storage::invocation_record rec;
    rec.procedure = "bank.transfer";
    rec.status = "ok";
    rec.args = R"({"amount":5,"from":"a","to":"b"})";
    rec.result = "bank.transfer: insufficient funds in a";
    auto bytes = storage::encode(rec);
    CHECK((static_cast<uint8_t>(bytes[12]) & 24) == 0);
    auto d = storage::decode(bytes);
    REQUIRE(d);
    CHECK(d->payload == rec.args);
    CHECK(d->result == rec.result);
    auto v1 = storage::decode(storage::encode_v1(*d));
    REQUIRE(v1);
    CHECK(v1->payload == rec.args);
    CHECK(v1->result == rec.result);

    auto refused = [&](std::string args) {
      storage::invocation_record r = rec;
      r.args = std::move(args);
      CHECK(!storage::record_value_text(r.args));
      auto e = storage::decode(storage::encode(r));
      REQUIRE(!e);
      CHECK(is(e.error(), errc::corrupt_data));
    };
    refused(std::string{"\xc1\x92\x01", 3});           // an array of 2 holding 1
    refused(std::string{"\xc1\x01\x02", 3});           // bytes after the value
    refused(std::string{"\xc1\xdb\xff\xff\xff\xff", 6}); // a string longer than the field
    refused(std::string{"\xc1\x81\x01\x02", 4});       // a map key that is no string
    refused(std::string{"\xc1\xc4\x01\x00", 4});       // bin
    refused(std::string{"\xc1\xa2\xff\xfe", 4});       // a string that is not UTF-8
    refused("\xc1" + std::string(300, '\x91') + "\x01"); // nested too deep
    auto nested = "\xc1" + std::string(200, '\x91') + "\x01";
    CHECK(storage::record_value_text(nested)
          == std::string(200, '[') + "1" + std::string(200, ']'));
  }
} // TEST_SUITE
