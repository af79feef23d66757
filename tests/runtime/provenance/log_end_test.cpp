// The provenance log knows where it must end (issue 16): the database records the lsn each
// committing transaction took and the last lsn the log was written to, so a log cut at a frame
// boundary, missing its last segment or all of them, or cut a few hundred bytes short is told
// apart from a whole one. Records the WAL still holds are rebuilt with the lsns they took;
// otherwise a node refuses to start naming the missing lsns, `--accept-log-loss` records the
// loss in the log, lsns are never handed out twice, `comb log verify --data`, replay and the
// spooler say what is missing.
#include "apps/bank/bank.hpp"
#include "base/errc.hpp"
#include "node/node.hpp"
#include "runtime/provenance/provenance_recorder.hpp"
#include "runtime/provenance/replay.hpp"
#include "runtime/provenance/spooler.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"
#include "storage/provenance_log.hpp"
#include "storage/sql_store.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>
#include <rocksdb/utilities/transaction_db.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include <unistd.h>

using namespace comb;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<runtime::procedure_registry> procs() {
  auto p = std::make_shared<runtime::procedure_registry>();
  apps::bank::register_bank(*p);
  return p;
}

runtime::node_config config(const std::string& dir) {
  runtime::node_config c;
  c.data_dir = dir + "/data";
  c.provenance_dir = dir + "/log";
  c.durability = storage::durability::async;
  c.partitions = 2;
  return c;
}

// Runs `calls` bank.open calls (each a committed invocation) on a fresh node, then stops it.
void run_node(caf::actor_system& sys, const runtime::node_config& cfg, const std::string& prefix,
              int calls) {
  auto n = test::must(runtime::node::start(sys, cfg, procs()));
  for (int i = 0; i < calls; ++i)
    test::must(
      n->call("bank.open", json{{"account", prefix + std::to_string(i)}, {"balance", 1}}, "admin"));
}

// lsn -> (kind, execution id or procedure) of every record in the log.
std::map<uint64_t, std::string> records(const std::string& log) {
  std::map<uint64_t, std::string> out;
  auto r = test::must(storage::log_reader::open(log));
  REQUIRE(!r.for_each(0, [&](storage::log_record&& rec) {
    out[rec.lsn] = rec.kind == storage::log_record::kind_t::invocation
                     ? "exec " + std::to_string(rec.execution_id)
                     : rec.procedure;
    return true;
  }));
  return out;
}

// The offsets at which the frames of a segment end.
std::vector<uint64_t> frame_ends(const std::string& segment) {
  auto b = test::read_file(segment);
  std::vector<uint64_t> out;
  for (uint64_t off = storage::segment_header_bytes; off + 8 <= b.size();) {
    uint32_t len;
    std::memcpy(&len, b.data() + off, 4);
    off += 8 + len;
    out.push_back(off);
  }
  return out;
}

std::string only_segment(const std::string& log) {
  auto r = test::must(storage::log_reader::open(log));
  auto segs = r.segments();
  REQUIRE(segs.size() == 1);
  return log + "/" + segs[0];
}

// Flushes every table of the data folder and deletes the WAL files left (archived ones too, as
// time takes them), so that no provenance record can be rebuilt from the WAL any more.
void drop_wal(const std::string& data) {
  storage::options opts;
  opts.create_if_missing = false;
  {
    auto db = test::must(storage::database::open(data, opts));
    std::vector<rocksdb::ColumnFamilyHandle*> cfs{db->raw()->DefaultColumnFamily()};
    for (auto& t : db->tables())
      cfs.push_back(db->handle(t));
    REQUIRE(db->raw()->Flush(rocksdb::FlushOptions{}, cfs).ok());
  }
  // What the flush wrote is in tables now: the WAL files before the newest are obsolete.
  fs::remove_all(data + "/db/archive");
  std::vector<fs::path> wal;
  for (auto& e : fs::directory_iterator(data + "/db"))
    if (e.path().extension() == ".log")
      wal.push_back(e.path());
  std::sort(wal.begin(), wal.end());
  for (size_t i = 0; i + 1 < wal.size(); ++i)
    fs::remove(wal[i]);
  auto db = test::must(storage::database::open(data, opts));
  int heads = 0;
  REQUIRE(!db->scan_wal(0, [&](auto, const auto&) { ++heads; }));
  REQUIRE(heads == 0);
}

using test::run_comb;

// Commits `n` invocations through `rec`, each writing the row k<id> of the table "rows"; `ids`
// counts the execution ids on (the lsns, too, when nothing else takes one).
void commit_rows(storage::database& db, runtime::provenance_recorder& rec, uint64_t& ids, int n) {
  for (int i = 0; i < n; ++i) {
    auto txn = db.begin();
    REQUIRE(!txn->put_row("rows", "k" + std::to_string(ids), json{{"v", ids}}));
    runtime::invocation_record r;
    r.execution_id = ids++;
    r.procedure = "test.write";
    r.role = "tester";
    r.args = "{}";
    r.result = "null";
    r.status = "ok";
    r.partition = static_cast<uint32_t>(ids % 3);
    r.changes = txn->take_changes();
    rec.before_commit(*txn, r);
    REQUIRE(!txn->commit());
    rec.after_commit(r, true);
  }
}

std::string digest_of(const std::string& data) {
  storage::options opts;
  opts.create_if_missing = false;
  opts.keep_wal_seconds = runtime::provenance_recorder::keep_wal_seconds;
  auto db = test::must(storage::database::open(data, opts));
  return test::must(db->digest());
}

} // namespace

TEST_SUITE("runtime.provenance.log_end") {
  TEST_CASE("a log cut at a frame boundary is rebuilt from the WAL with the lsns it had") {
    test::temp_dir dir;
    auto cfg = config(dir.path());
    runtime::system_config sc{2};
    caf::actor_system sys{sc};
    run_node(sys, cfg, "a", 40);
    auto before = records(cfg.provenance_dir);
    REQUIRE(before.size() >= 40);
    auto last = before.rbegin()->first;
    // Cut right after the 20th frame: the log reads as whole.
    auto seg = only_segment(cfg.provenance_dir);
    auto ends = frame_ends(seg);
    REQUIRE(ends.size() == before.size());
    REQUIRE(::truncate(seg.c_str(), static_cast<off_t>(ends[19])) == 0);
    CHECK(test::must(storage::verify_log(cfg.provenance_dir)).records == 20);
    // verify --data names the missing lsns and that the WAL holds them.
    auto [rc,
          out] = run_comb({"log", "verify", "--log", cfg.provenance_dir, "--data", cfg.data_dir},
                          dir.path() + "/verify.txt");
    CAPTURE(out);
    CHECK(rc == 1);
    CHECK(out.find("FAILED: the log ends at lsn 20") != std::string::npos);
    CHECK(out.find("lsns 21.." + std::to_string(last)) != std::string::npos);
    CHECK(out.find("the WAL still holds") != std::string::npos);
    // Replay against the data folder refuses the short log instead of a wrong digest.
    runtime::replay_options ro;
    ro.log_dir = cfg.provenance_dir;
    ro.into_dir = dir.path() + "/replayed";
    ro.source_data = cfg.data_dir;
    auto refused = runtime::replay(*procs(), ro);
    REQUIRE(!refused);
    CHECK(describe(refused.error()).find("lsns 21..") != std::string::npos);
    // The node rebuilds every record with the lsn it took, and goes on after them.
    {
      auto n = test::must(runtime::node::start(sys, cfg, procs()));
      CHECK(n->recorder()->recovery_note().find("lsns 21.." + std::to_string(last))
            != std::string::npos);
      test::must(n->call("bank.open", json{{"account", "after"}, {"balance", 1}}, "admin"));
    }
    auto now = records(cfg.provenance_dir);
    for (auto& [lsn, what] : before) {
      CAPTURE(lsn);
      CHECK(now[lsn] == what);
    }
    CHECK(now.size() > before.size());
    CHECK(now.rbegin()->first > last);
    auto [rc2,
          out2] = run_comb({"log", "verify", "--log", cfg.provenance_dir, "--data", cfg.data_dir},
                           dir.path() + "/verify2.txt");
    CAPTURE(out2);
    CHECK(rc2 == 0);
    CHECK(out2.find("where it must") != std::string::npos);
    ro.into_dir = dir.path() + "/replayed2";
    auto rep = test::must(runtime::replay(*procs(), ro));
    CHECK(rep.digest == digest_of(cfg.data_dir));
  }

  TEST_CASE("records nothing can rebuild: the node refuses to start naming them; "
            "--accept-log-loss records the loss; lsns are never reused; the spooler says so") {
    test::temp_dir dir;
    auto cfg = config(dir.path());
    runtime::system_config sc{2};
    caf::actor_system sys{sc};
    run_node(sys, cfg, "a", 30);
    auto before = records(cfg.provenance_dir);
    auto last = before.rbegin()->first;
    auto store = test::must(storage::sql_store::open(dir.path() + "/prov.sqlite"));
    CHECK(test::must(store->spool(cfg.provenance_dir)) == before.size());
    CHECK(!runtime::check_spooled(*store, cfg.provenance_dir));
    drop_wal(cfg.data_dir);
    // Cut 1,500 bytes (records are about 350): whole records and a torn one.
    auto seg = only_segment(cfg.provenance_dir);
    auto size = fs::file_size(seg);
    REQUIRE(::truncate(seg.c_str(), static_cast<off_t>(size - 1500)) == 0);
    auto ends = frame_ends(seg);
    uint64_t kept = 0;
    while (kept < ends.size() && ends[kept] <= size - 1500)
      ++kept;
    REQUIRE(kept + 3 < before.size());
    auto range = std::to_string(kept + 1) + ".." + std::to_string(last);
    // The spooler notices that the log lost lsns it has passed.
    auto passed = runtime::check_spooled(*store, cfg.provenance_dir);
    REQUIRE(passed);
    CHECK(describe(passed).find("spooled up to lsn " + std::to_string(last)) != std::string::npos);
    CHECK(describe(passed).find("ends at lsn " + std::to_string(kept)) != std::string::npos);
    // Refused, naming the lost lsns; nothing is appended.
    auto refused = runtime::node::start(sys, cfg, procs());
    REQUIRE(!refused);
    CAPTURE(describe(refused.error()));
    CHECK(describe(refused.error()).find("lsns " + range) != std::string::npos);
    CHECK(describe(refused.error()).find("are lost") != std::string::npos);
    CHECK(describe(refused.error()).find("--accept-log-loss") != std::string::npos);
    CHECK(records(cfg.provenance_dir).size() == kept);
    // `comb node` says the same and exits.
    auto [rc, out] = run_comb({"node", "--data", cfg.data_dir, "--provenance", cfg.provenance_dir,
                               "--listen", "127.0.0.1:0", "--spool", "none"},
                              dir.path() + "/node.txt");
    CAPTURE(out);
    CHECK(rc != 0);
    CHECK(out.find("lsns " + range) != std::string::npos);
    CHECK(out.find("--accept-log-loss") != std::string::npos);
    // Accepted: each lost lsn holds a loss record; new records come after them.
    cfg.accept_log_loss = true;
    {
      auto n = test::must(runtime::node::start(sys, cfg, procs()));
      CHECK(n->recorder()->recovery_note().find("accepted") != std::string::npos);
      test::must(n->call("bank.open", json{{"account", "after"}, {"balance", 1}}, "admin"));
    }
    auto now = records(cfg.provenance_dir);
    for (uint64_t lsn = kept + 1; lsn <= last; ++lsn)
      CHECK(now[lsn] == "provenance.loss");
    REQUIRE(now.rbegin()->first > last);
    CHECK(now.rbegin()->second.rfind("exec ", 0) == 0);
    // The loss record says what was lost.
    auto r = test::must(storage::log_reader::open(cfg.provenance_dir));
    REQUIRE(!r.for_each(last, [&](storage::log_record&& rec) {
      CHECK(rec.payload.find(range) != std::string::npos);
      return false;
    }));
    // The store's last lsn is now a loss record in the log: the spooler names it.
    passed = runtime::check_spooled(*store, cfg.provenance_dir);
    REQUIRE(passed);
    CHECK(describe(passed).find("lsn " + std::to_string(last) + " in the log")
          != std::string::npos);
    // A later start needs no flag: the loss is in the log.
    cfg.accept_log_loss = false;
    test::must(runtime::node::start(sys, cfg, procs()));
  }

  TEST_CASE("a deleted last segment, or all of them, is rebuilt from the WAL or refused") {
    test::temp_dir dir;
    storage::options opts;
    opts.keep_wal_seconds = runtime::provenance_recorder::keep_wal_seconds;
    auto data = dir.path() + "/db";
    auto db = test::must(storage::database::open(data, opts));
    REQUIRE(!db->create_table("rows"));
    runtime::provenance_recorder::options ro;
    ro.log_dir = dir.path() + "/log";
    ro.segment_bytes = 2048;
    uint64_t ids = 1;
    auto commit = [&](runtime::provenance_recorder& rec, int n) { commit_rows(*db, rec, ids, n); };
    {
      auto rec = test::must(runtime::provenance_recorder::open(*db, ro));
      commit(*rec, 60);
    }
    auto before = records(ro.log_dir);
    REQUIRE(before.size() == 60);
    auto segs = test::must(storage::log_reader::open(ro.log_dir)).segments();
    REQUIRE(segs.size() >= 3);
    auto first_of_last = std::stoull(segs.back());
    // The last segment: the WAL holds its records, rebuilt with their own lsns.
    fs::remove(ro.log_dir + "/" + segs.back());
    auto end = test::must(
      runtime::provenance_recorder::check_log_end(*db, ro.log_dir, first_of_last - 1));
    CHECK(!end.complete());
    CHECK(end.in_wal == 60 - (first_of_last - 1));
    CHECK(end.lost.empty());
    {
      auto rec = test::must(runtime::provenance_recorder::open(*db, ro));
      CHECK(rec->recovery_note().find("lsns " + std::to_string(first_of_last) + "..60")
            != std::string::npos);
      commit(*rec, 1);
    }
    auto now = records(ro.log_dir);
    for (auto& [lsn, what] : before)
      CHECK(now[lsn] == what);
    CHECK(now.rbegin()->first == 61);
    // All segments, and the WAL flushed away: refused, naming every lsn; with the loss
    // accepted, the log is whole again and goes on at 62.
    for (auto& s : test::must(storage::log_reader::open(ro.log_dir)).segments())
      fs::remove(ro.log_dir + "/" + s);
    db.reset();
    drop_wal(data);
    db = test::must(storage::database::open(data, opts));
    CHECK(test::must(storage::verify_log(ro.log_dir)).records == 0);
    auto refused = runtime::provenance_recorder::open(*db, ro);
    REQUIRE(!refused);
    CAPTURE(describe(refused.error()));
    CHECK(describe(refused.error()).find("the log ends at lsn 0") != std::string::npos);
    CHECK(describe(refused.error()).find("lsns 1..61 (61 record(s)) are lost")
          != std::string::npos);
    ro.accept_log_loss = true;
    {
      auto rec = test::must(runtime::provenance_recorder::open(*db, ro));
      commit(*rec, 1);
    }
    now = records(ro.log_dir);
    CHECK(now.size() == 62);
    CHECK(now[1] == "provenance.loss");
    CHECK(now[61] == "provenance.loss");
    CHECK(now[62] == "exec 62");
  }

  TEST_CASE("old segments lost while the last stays: node start, verify and replay name them") {
    test::temp_dir dir;
    storage::options opts;
    opts.keep_wal_seconds = runtime::provenance_recorder::keep_wal_seconds;
    auto data = dir.path() + "/db";
    auto db = test::must(storage::database::open(data, opts));
    REQUIRE(!db->create_table("rows"));
    runtime::provenance_recorder::options ro;
    ro.log_dir = dir.path() + "/log";
    ro.segment_bytes = 1024; // 60 records fill at least 4 segments
    uint64_t ids = 1;
    auto commit = [&](runtime::provenance_recorder& rec, int n) { commit_rows(*db, rec, ids, n); };
    {
      auto rec = test::must(runtime::provenance_recorder::open(*db, ro));
      commit(*rec, 60);
    }
    auto segs = test::must(storage::log_reader::open(ro.log_dir)).segments();
    REQUIRE(segs.size() >= 4);
    // The first segment and the third: the last stays, so the log's end is where the database
    // says it must be, and only the log's start and its order tell the loss.
    fs::copy_file(ro.log_dir + "/" + segs[0], dir.path() + "/first.plog");
    fs::remove(ro.log_dir + "/" + segs[0]);
    fs::remove(ro.log_dir + "/" + segs[2]);
    auto first_gap = "lsns 1.." + std::to_string(std::stoull(segs[1]) - 1);
    auto middle_gap = "lsns " + std::to_string(std::stoull(segs[2])) + ".."
                      + std::to_string(std::stoull(segs[3]) - 1);
    auto refused = runtime::provenance_recorder::open(*db, ro);
    REQUIRE(!refused);
    CAPTURE(describe(refused.error()));
    CHECK(describe(refused.error()).find(first_gap) != std::string::npos);
    CHECK(describe(refused.error()).find(segs[1]) != std::string::npos);
    CHECK(describe(refused.error()).find("--accept-log-loss") != std::string::npos);
    db.reset();
    // `comb log verify [--data]` and `comb replay --data` name the first gap and fail.
    for (bool with_data : {false, true}) {
      std::vector<std::string> args{"log", "verify", "--log", ro.log_dir};
      if (with_data)
        args.insert(args.end(), {"--data", data});
      auto [rc, out] = run_comb(args, dir.path() + "/verify.txt");
      CAPTURE(out);
      CHECK(rc != 0);
      CHECK(out.find(first_gap) != std::string::npos);
    }
    auto [rc, out] = run_comb({"replay", "--log", ro.log_dir, "--into", dir.path() + "/replayed",
                               "--data", data},
                              dir.path() + "/replay.txt");
    CAPTURE(out);
    CHECK(rc != 0);
    CHECK(out.find(first_gap) != std::string::npos);
    // With the first segment back, the middle gap is named, between the segments around it.
    fs::copy_file(dir.path() + "/first.plog", ro.log_dir + "/" + segs[0]);
    {
      auto [vrc, vout] = run_comb({"log", "verify", "--log", ro.log_dir, "--data", data},
                                  dir.path() + "/verify.txt");
      CAPTURE(vout);
      CHECK(vrc != 0);
      CHECK(vout.find(middle_gap) != std::string::npos);
      CHECK(vout.find("segment " + segs[1] + " ends at lsn") != std::string::npos);
      CHECK(vout.find("the next one is " + segs[3]) != std::string::npos);
    }
    // Both lost again, and the loss accepted: each lsn holds a loss record, in order.
    fs::remove(ro.log_dir + "/" + segs[0]);
    db = test::must(storage::database::open(data, opts));
    ro.accept_log_loss = true;
    {
      auto rec = test::must(runtime::provenance_recorder::open(*db, ro));
      CHECK(rec->recovery_note().find(first_gap + " were in no segment") != std::string::npos);
      CHECK(rec->recovery_note().find(middle_gap + " were in no segment") != std::string::npos);
      commit(*rec, 1);
    }
    auto now = records(ro.log_dir);
    REQUIRE(now.size() == 61);
    for (auto& [lsn, what] : now) {
      bool lost = lsn < std::stoull(segs[1])
                  || (lsn >= std::stoull(segs[2]) && lsn < std::stoull(segs[3]));
      CHECK_MESSAGE(what == (lost ? std::string{"provenance.loss"} : "exec " + std::to_string(lsn)),
                    "lsn " << lsn);
    }
    // The loss is in the log now: a later start needs no flag, and verify says ok.
    ro.accept_log_loss = false;
    test::must(runtime::provenance_recorder::open(*db, ro));
    CHECK(test::must(storage::verify_log(ro.log_dir)).records == 61);
  }

  TEST_CASE("lsns a crash kept from the log and the WAL are filled, not reused or refused") {
    test::temp_dir dir;
    storage::options opts;
    opts.keep_wal_seconds = runtime::provenance_recorder::keep_wal_seconds;
    auto db = test::must(storage::database::open(dir.path() + "/db", opts));
    REQUIRE(!db->create_table("rows"));
    runtime::provenance_recorder::options ro;
    ro.log_dir = dir.path() + "/log";
    auto rec = test::must(runtime::provenance_recorder::open(*db, ro));
    auto invocation = [](uint64_t id) {
      runtime::invocation_record r;
      r.execution_id = id;
      r.procedure = "test.write";
      r.role = "tester";
      r.args = "{}";
      r.result = "null";
      r.status = "ok";
      return r;
    };
    for (uint64_t id = 1; id <= 3; ++id) { // logged as usual: lsns 1..3
      auto txn = db->begin();
      REQUIRE(!txn->put_row("rows", "k" + std::to_string(id), json{{"v", id}}));
      auto r = invocation(id);
      r.changes = txn->take_changes();
      rec->before_commit(*txn, r);
      REQUIRE(!txn->commit());
      rec->after_commit(r, true);
    }
    rec->flush();
    // Then a crash: lsn 4 was taken by a transaction that never committed, lsn 5 by one that
    // committed, and neither reached the log.
    {
      auto txn = db->begin();
      auto r = invocation(4);
      rec->before_commit(*txn, r);
      txn->rollback();
    }
    {
      auto txn = db->begin();
      REQUIRE(!txn->put_row("rows", "k5", json{{"v", 5}}));
      auto r = invocation(5);
      r.changes = txn->take_changes();
      rec->before_commit(*txn, r);
      REQUIRE(!txn->commit());
    }
    rec->close();
    rec.reset();
    std::filesystem::remove(ro.log_dir + "/wal_checkpoint"); // a crash writes none
    rec = test::must(runtime::provenance_recorder::open(*db, ro));
    CHECK(rec->recovery_note().find("appended 1 committed invocation") != std::string::npos);
    rec->close();
    auto now = records(ro.log_dir);
    CHECK(now.size() == 5);
    CHECK(now[3] == "exec 3");
    CHECK(now[4] == "provenance.unwritten");
    CHECK(now[5] == "exec 5");
    auto end = test::must(runtime::provenance_recorder::check_log_end(*db, ro.log_dir, 5));
    CHECK(end.complete());
  }

} // TEST_SUITE
