// The outbox path end to end, on loopback: a primary procedure records a function call in its
// own transaction, the dispatcher sends it through function actors to a real `comb compute`
// process, and a result procedure applies the result exactly once. Covers calls committed
// before a node restart, a compute process killed mid-run, and duplicate result delivery.
#include "actors/outbox_dispatcher.hpp"
#include "runtime/pieces/builtin_tasks.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "base/errc.hpp"
#include "node/node.hpp"
#include "runtime/pieces/blob_file_pieces.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/system_config.hpp"
#include "storage/provenance_log.hpp"
#include "storage/transaction.hpp"
#include "tests/compute_util.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <set>
#include <random>
#include <sstream>

using namespace comb;
using namespace comb::runtime;
using namespace std::chrono_literals;

namespace {

struct client_config : system_config {
  client_config() : system_config(2) { add_compute_types(*this); }
};

std::shared_ptr<procedure_registry> demo_procedures() {
  auto procs = std::make_shared<procedure_registry>();
  outbox::add_tables(*procs);
  procs->add_table("results");
  procedure_options any;
  any.roles = {"*"};
  any.partition_by = "name";
  procs->add(
    "demo.submit",
    [](call_context& ctx, storage::transaction& txn,
       const nlohmann::json& args) -> caf::expected<nlohmann::json> {
      outbox_call c;
      c.model = "checksum";
      c.result_procedure = "demo.store";
      c.context = {{"name", arg<std::string>(args, "name")}};
      auto key = outbox::enqueue(ctx, txn, c, arg<std::string>(args, "payload"));
      if (!key)
        return key.error();
      return nlohmann::json{{"call", *key}};
    },
    any);
  procedure_options store = any;
  store.partition_by.clear();
  outbox::add_result_procedure(
    *procs, "demo.store",
    [](call_context&, storage::transaction& txn,
       const nlohmann::json& args) -> caf::expected<nlohmann::json> {
      auto name = args.at("context").at("name").get<std::string>();
      auto old = txn.get_row_for_update("results", name);
      if (!old)
        return old.error();
      nlohmann::json row{{"applied_count", *old ? (**old).value("applied_count", 0) + 1 : 1}};
      if (auto e = args.find("error"); e != args.end()) {
        row["error"] = *e;
      } else {
        const auto& out = args.at("result").at("output").get_binary();
        std::vector<char> bytes(out.begin(), out.end());
        auto sum = parse_checksum_output(bytes);
        if (!sum)
          return sum.error();
        row["checksum"] = sum->first;
        row["length"] = sum->second;
        row["model_version"] = args.at("result").at("model_version");
      }
      if (auto err = txn.put_row("results", name, row))
        return err;
      return nlohmann::json{{"stored", name}};
    },
    store);
  return procs;
}

std::string payload_for(int i, size_t size) {
  std::string s(size, ' ');
  std::mt19937 rng{static_cast<uint32_t>(i)};
  for (auto& c : s)
    c = static_cast<char>('a' + rng() % 26);
  return s;
}

struct fixture {
  test::temp_dir dir;
  client_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::unique_ptr<node> n;
  caf::actor dispatcher;

  void start_node(bool provenance = false) {
    node_config nc;
    nc.data_dir = dir.path() + "/data";
    if (provenance)
      nc.provenance_dir = dir.path() + "/provenance";
    nc.partitions = 2;
    nc.durability = storage::durability::async;
    auto started = node::start(sys, nc, demo_procedures());
    REQUIRE_MESSAGE(started, test::why(started));
    n = std::move(*started);
  }

  void start_dispatcher(uint16_t port,
                        uint32_t apply_batch = actors::dispatcher_config{}.max_apply_batch) {
    actors::dispatcher_config dc;
    dc.max_apply_batch = apply_batch;
    dc.function.compute_port = port;
    dc.function.retry_delay = 100ms;
    dc.function.max_attempts = 100;
    dc.provenance = n->provenance();
    dispatcher = actors::spawn_outbox_dispatcher(sys, n->db(), n->route(), dc);
  }

  void stop() {
    if (dispatcher) {
      self->send_exit(dispatcher, caf::exit_reason::user_shutdown);
      self->wait_for(dispatcher);
      dispatcher = nullptr;
    }
    n.reset();
  }

  ~fixture() { stop(); }

  std::string submit(int i, size_t size) {
    auto r = n->call("demo.submit",
                     {{"name", "job" + std::to_string(i)}, {"payload", payload_for(i, size)}},
                     "admin");
    REQUIRE_MESSAGE(r, test::why(r));
    return r->at("call").get<std::string>();
  }

  uint64_t results() { return test::must(n->db().count("results")); }

  bool wait_results(uint64_t want, std::chrono::seconds limit = 60s) {
    return test::wait_until([&] { return results() >= want; }, limit,
                            std::to_string(want) + " rows in results");
  }

  /// The dispatcher's counters, once it has handled every message queued before this call.
  nlohmann::json dispatcher_stats() {
    std::string stats;
    self->request(dispatcher, 10s, caf::get_atom::value)
      .receive([&](std::string& s) { stats = s; }, [&](caf::error& e) { FAIL(describe(e)); });
    return nlohmann::json::parse(stats);
  }

  void check_results(int count, size_t size) {
    auto txn = n->db().begin();
    for (int i = 0; i < count; ++i) {
      auto row = test::must(txn->get_row("results", "job" + std::to_string(i)));
      REQUIRE_MESSAGE(row, "no result for job" << i);
      CHECK((*row)["applied_count"] == 1);
      auto p = payload_for(i, size);
      checksum64 c;
      c.update(p.data(), p.size());
      CHECK((*row)["checksum"] == c.digest());
      CHECK((*row)["length"] == p.size());
      CHECK((*row)["model_version"] == 1);
    }
    txn->rollback();
    CHECK(test::must(outbox::pending(n->db(), "", 1000)).empty());
  }
};

/// A database with the outbox's tables only.
std::unique_ptr<storage::database> open_outbox_db(const test::temp_dir& dir) {
  auto db = test::must(storage::database::open(dir.path() + "/data"));
  REQUIRE(!db->create_table(outbox::calls_table));
  REQUIRE(!db->create_table(outbox::payload_table, storage::table_kind::blobs));
  REQUIRE(!db->create_table(outbox::done_table));
  return db;
}

} // namespace

TEST_SUITE("runtime.pieces.outbox") {
  TEST_CASE("a call is announced once its transaction commits, never when it rolls back") {
    test::temp_dir dir;
    auto db = open_outbox_db(dir);
    std::vector<std::string> heard;
    std::shared_ptr<committed_call> last;
    outbox::set_listener(*db, [&](std::shared_ptr<committed_call> c) {
      heard.push_back(c->call.key);
      last = std::move(c);
    });
    outbox_call c;
    c.model = "checksum";
    c.result_procedure = "demo.store";
    std::string big(3 << 20, 'x'); // a payload for the blob store
    call_context ctx;
    ctx.execution_id = 42;
    std::string committed;
    {
      auto txn = db->begin();
      auto key = outbox::enqueue(ctx, *txn, c, big);
      REQUIRE(key);
      committed = *key;
      CHECK(heard.empty()); // not before the commit
      CHECK(!txn->commit());
    }
    CHECK(heard == std::vector<std::string>{committed});
    // The listener hears the call as committed, payload included.
    REQUIRE(last);
    CHECK(last->call.execution_id == 42);
    CHECK(last->call.call.model == "checksum");
    CHECK(last->call.call.result_procedure == "demo.store");
    CHECK(last->call.task_id != 0);
    CHECK(last->has_payload());
    CHECK(std::string(last->payload.begin(), last->payload.end()) == big);
    {
      call_context other;
      other.execution_id = 43;
      auto txn = db->begin();
      REQUIRE(outbox::enqueue(other, *txn, c, "small"));
      txn->rollback();
    }
    CHECK(heard.size() == 1);
    auto found = outbox::find(*db, committed);
    REQUIRE(found);
    REQUIRE(*found);
    CHECK((*found)->execution_id == 42);
    CHECK((*found)->call.result_procedure == "demo.store");
    CHECK((*found)->task_id == last->call.task_id);
    std::vector<char> payload;
    CHECK(!outbox::payload(*db, committed, payload));
    CHECK(std::string(payload.begin(), payload.end()) == big);
    CHECK(!outbox::find(*db, "0000000000000043.00000000").value());
    outbox::set_listener(*db, {});
  }

  TEST_CASE("a result removes its call and the call's payload blob, whatever the call's "
            "context holds (members named payload nested in it, long strings, large maps)") {
    test::temp_dir dir;
    auto db = open_outbox_db(dir);
    REQUIRE(!db->create_table("rows"));
    procedure_registry procs;
    std::vector<nlohmann::json> seen;
    outbox::add_result_procedure(procs, "demo.store",
                                 [&](call_context&, storage::transaction&,
                                     const nlohmann::json& args) -> caf::expected<nlohmann::json> {
                                   seen.push_back(args.at("context"));
                                   return nlohmann::json{};
                                 });
    const auto* store = procs.find("demo.store");
    REQUIRE(store);
    // Contexts that a row scanner must step over: nested members named like the payload's,
    // strings of 8-, 16- and 32-bit sizes, arrays and maps past 15 and 65,535 entries,
    // numbers of every width, floats, booleans, null, bytes.
    nlohmann::json wide = nlohmann::json::object();
    for (int i = 0; i < 40; ++i)
      wide["k" + std::to_string(i)] = i % 2 == 0 ? nlohmann::json(i) : nlohmann::json("v");
    std::vector<nlohmann::json> contexts{
      {{"payload", "not this one"}},
      {{"nested", {{"payload", {1, 2, {{"payload_rows", nullptr}}}}}}},
      {{"s8", std::string(200, 'a')},
       {"s16", std::string(1000, 'c')},
       {"s32", std::string(70000, 'b')},
       {"wide", wide}},
      {{"n",
        {0, -1, -33, 127, 128, 255, 256, 65536, -40000, 1ll << 40, -(1ll << 40),
         18446744073709551615ull, 1.5, -2.25e300, true, false, nullptr}},
       {"bytes", nlohmann::json::binary_t{std::vector<uint8_t>(300, 7)}},
       {"long", std::vector<int>(70000, 1)}},
    };
    std::string big(200 << 10, 'x'); // a payload for the blob store
    REQUIRE(db->opts().blob_inline_max < big.size());
    {
      auto txn = db->begin();
      REQUIRE(!txn->put("rows", "a", "row bytes"));
      REQUIRE(!txn->commit());
    }
    std::vector<std::string> keys;
    call_context ctx;
    ctx.execution_id = 7;
    for (size_t i = 0; i < contexts.size() * 3; ++i) {
      outbox_call c;
      c.model = "checksum";
      c.result_procedure = "demo.store";
      c.context = contexts[i % contexts.size()];
      auto txn = db->begin();
      // In the row (small), in a blob (large), or rows named by the call.
      auto key = i / contexts.size() == 0   ? outbox::enqueue(ctx, *txn, c, "small")
                 : i / contexts.size() == 1 ? outbox::enqueue(ctx, *txn, c, big)
                                            : outbox::enqueue_rows(ctx, *txn, c, "rows", {"a"});
      REQUIRE_MESSAGE(key, test::why(key));
      REQUIRE(!txn->commit());
      keys.push_back(*key);
    }
    CHECK(test::must(db->count(outbox::payload_table)) == contexts.size());
    // The payload reads back whole wherever it is (read from the row's bytes when in the row),
    // however the context nests members named payload / payload_rows.
    for (size_t i = 0; i < keys.size(); ++i) {
      std::vector<char> out{'o', 'l', 'd'};
      auto err = outbox::payload(*db, keys[i], out);
      REQUIRE_MESSAGE(!err, describe(err));
      if (i / contexts.size() < 2)
        CHECK(std::string(out.begin(), out.end()) == (i / contexts.size() == 0 ? "small" : big));
      else
        CHECK(std::string(out.begin(), out.end()).find("row bytes") != std::string::npos);
    }
    // pending() reads each call from its row's bytes (the payload stepped over): the call
    // find() decodes, whatever its context holds; skipped keys are left out.
    auto calls = test::must(outbox::pending(*db, "", 100));
    REQUIRE(calls.size() == keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      CHECK(calls[i].key == keys[i]);
      auto f = test::must(outbox::find(*db, keys[i]));
      REQUIRE(f);
      CHECK(calls[i].task_id == f->task_id);
      CHECK(calls[i].execution_id == 7);
      CHECK(calls[i].call.kind == f->call.kind);
      CHECK(calls[i].call.model == "checksum");
      CHECK(calls[i].call.model_version == f->call.model_version);
      CHECK(calls[i].call.result_procedure == "demo.store");
      CHECK(calls[i].call.role == f->call.role);
      CHECK(calls[i].call.context == contexts[i % contexts.size()]);
      CHECK(f->call.context == contexts[i % contexts.size()]);
      CHECK(calls[i].call.inputs.empty());
    }
    auto some = test::must(outbox::pending(*db, "", 100, [&](std::string_view k) {
      return k == keys[0] || k == keys[4];
    }));
    CHECK(some.size() == keys.size() - 2);
    for (size_t i = 0; i < keys.size(); ++i) {
      for (bool again : {false, true}) {
        call_context rc;
        rc.execution_id = 100 + i;
        auto txn = db->begin();
        auto r = store->fn(rc, *txn,
                           {{"call", keys[i]},
                            {"result", {{"model", "checksum"}}},
                            {"context", contexts[i % contexts.size()]}});
        REQUIRE_MESSAGE(r, describe(r.error()));
        CHECK((*r).value("duplicate", false) == again);
        REQUIRE(!txn->commit());
      }
    }
    CHECK(seen.size() == keys.size());
    CHECK(test::must(db->count(outbox::payload_table)) == 0);
    CHECK(test::must(db->count(outbox::calls_table)) == 0);
    CHECK(test::must(db->count(outbox::done_table)) == keys.size());
    // A damaged call row is an error, not a result applied without its blob removed.
    {
      auto txn = db->begin();
      REQUIRE(!txn->put(outbox::calls_table, "bad", std::string("\x82\xa1k\xc1", 4)));
      REQUIRE(!txn->commit());
    }
    call_context rc;
    rc.execution_id = 99;
    auto txn = db->begin();
    auto bad = store->fn(rc, *txn, {{"call", "bad"}, {"result", {{"model", "checksum"}}}});
    REQUIRE(!bad);
    CHECK(is(bad.error(), errc::corrupt_data));
    txn->rollback();
    auto scanned = outbox::pending(*db, "", 100);
    REQUIRE(!scanned);
    CHECK(is(scanned.error(), errc::corrupt_data));
    // A row that is a map but lacks a member the call needs, or holds one of another type.
    for (auto row : {nlohmann::json{{"kind", "infer"}, {"model", "m"}},
                     nlohmann::json{{"kind", "infer"},
                                    {"model", 3},
                                    {"model_version", 0},
                                    {"result_procedure", "demo.store"},
                                    {"role", "admin"},
                                    {"context", nlohmann::json::object()},
                                    {"execution_id", 1},
                                    {"task_id", 2}}}) {
      auto put = db->begin();
      REQUIRE(!put->put_row(outbox::calls_table, "bad", row));
      REQUIRE(!put->commit());
      scanned = outbox::pending(*db, "", 100);
      REQUIRE(!scanned);
      CHECK(is(scanned.error(), errc::corrupt_data));
    }
    // The same row with its members right is a call.
    {
      auto put = db->begin();
      REQUIRE(!put->put_row(outbox::calls_table, "bad",
                            {{"kind", "infer"},
                             {"model", "m"},
                             {"model_version", 4},
                             {"result_procedure", "demo.store"},
                             {"role", "admin"},
                             {"context", {{"x", 1}}},
                             {"execution_id", 1},
                             {"task_id", 2}}));
      REQUIRE(!put->commit());
      auto ok = test::must(outbox::pending(*db, "", 100));
      REQUIRE(ok.size() == 1);
      CHECK(ok[0].call.model_version == 4);
      CHECK(ok[0].call.context == nlohmann::json{{"x", 1}});
      CHECK(ok[0].task_id == 2);
    }
  }

  TEST_CASE("a call's typed inputs are stored with it and read back; inputs that do not "
            "describe the payload are refused") {
    test::temp_dir dir;
    auto db = open_outbox_db(dir);
    tensor_pack pack;
    uint8_t images[2 * 4 * 4 * 3] = {1, 2, 3};
    pack.add("images", tensor_dtype::u8, {2, 4, 4, 3}, images);
    pack.add_strings("requests", {"GET / HTTP/1.1\r\n\r\n", "x"});
    outbox_call c;
    c.model = "mobilenet_v2";
    c.result_procedure = "demo.store";
    c.inputs = pack.specs;
    std::string payload(pack.bytes.begin(), pack.bytes.end());
    call_context ctx;
    ctx.execution_id = 77;
    std::string key;
    {
      auto txn = db->begin();
      auto k = outbox::enqueue(ctx, *txn, c, payload);
      REQUIRE_MESSAGE(k, test::why(k));
      key = *k;
      CHECK(!txn->commit());
    }
    auto found = outbox::find(*db, key);
    REQUIRE(found);
    REQUIRE(*found);
    CHECK((*found)->call.inputs == pack.specs);
    auto pending = test::must(outbox::pending(*db, "", 10));
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].call.inputs == pack.specs);
    CHECK(pending[0].call.model == "mobilenet_v2");
    // Without inputs the call carries none (opaque bytes).
    outbox_call plain = c;
    plain.inputs.clear();
    {
      auto txn = db->begin();
      auto k = outbox::enqueue(ctx, *txn, plain, "opaque");
      REQUIRE(k);
      CHECK(!txn->commit());
      auto f = test::must(outbox::find(*db, *k));
      REQUIRE(f);
      CHECK(f->call.inputs.empty());
    }
    // One byte short of what the specs describe: refused, nothing recorded.
    {
      auto txn = db->begin();
      auto k = outbox::enqueue(ctx, *txn, c, payload.substr(1));
      REQUIRE(!k);
      CHECK(is(k.error(), errc::invalid_argument));
      CHECK_MESSAGE(describe(k.error()).find("model 'mobilenet_v2'") != std::string::npos,
                    describe(k.error()));
      auto bad = c;
      bad.inputs[0].dtype = 12;
      k = outbox::enqueue(ctx, *txn, bad, payload);
      REQUIRE(!k);
      CHECK_MESSAGE(describe(k.error()).find("'images' has unknown dtype 12") != std::string::npos,
                    describe(k.error()));
      CHECK(!txn->commit());
    }
    CHECK(test::must(outbox::pending(*db, "", 10)).size() == 2);
  }

  TEST_CASE("payloads copied into announced calls are bounded; past the bound a call comes "
            "without its payload, which stays readable from the outbox") {
    test::temp_dir dir;
    auto db = open_outbox_db(dir);
    std::vector<std::shared_ptr<committed_call>> held; // a listener that lets go of nothing
    outbox::set_listener(*db,
                         [&](std::shared_ptr<committed_call> c) { held.push_back(std::move(c)); });
    outbox_call c;
    c.model = "checksum";
    c.result_procedure = "demo.store";
    std::string big(5 << 20, 'y');
    auto enqueue = [&](uint64_t execution) {
      call_context ctx;
      ctx.execution_id = execution;
      auto txn = db->begin();
      REQUIRE(outbox::enqueue(ctx, *txn, c, big));
      REQUIRE(!txn->commit());
    };
    size_t fit = outbox::hint_bytes / big.size();
    for (size_t i = 0; i < fit + 2; ++i)
      enqueue(100 + i);
    REQUIRE(held.size() == fit + 2);
    for (size_t i = 0; i < fit; ++i)
      CHECK(held[i]->has_payload());
    for (size_t i = fit; i < fit + 2; ++i) {
      CHECK(!held[i]->has_payload());
      CHECK(held[i]->payload.empty());
      std::vector<char> out;
      CHECK(!outbox::payload(*db, held[i]->call.key, out));
      CHECK(out.size() == big.size());
    }
    held.clear(); // handled: the bound is free again
    enqueue(999);
    REQUIRE(held.size() == 1);
    CHECK(held[0]->has_payload());
    held.clear();
    outbox::set_listener(*db, {});
  }

  TEST_CASE("a call can name its input rows instead of copying them: the dispatcher gets "
            "their bytes, a later read checks them, changed or deleted rows fail the call") {
    test::temp_dir dir;
    auto db = open_outbox_db(dir);
    REQUIRE(!db->create_table("inputs", storage::table_kind::blobs));
    REQUIRE(!db->create_table("rows"));
    std::vector<std::shared_ptr<committed_call>> heard;
    outbox::set_listener(*db,
                         [&](std::shared_ptr<committed_call> c) { heard.push_back(std::move(c)); });
    std::string big(3 << 20, 'b'), a = "first row ", b = "second row";
    big[12345] = 'c';
    {
      auto txn = db->begin();
      REQUIRE(!txn->put_blob("inputs", "img", big));
      REQUIRE(!txn->put("rows", "a", a));
      REQUIRE(!txn->put("rows", "b", b));
      REQUIRE(!txn->commit());
    }
    outbox_call c;
    c.model = "checksum";
    c.result_procedure = "demo.store";
    auto enqueue = [&](uint64_t execution, const std::string& table,
                       const std::vector<std::string>& keys) {
      call_context ctx;
      ctx.execution_id = execution;
      auto txn = db->begin();
      auto key = outbox::enqueue_rows(ctx, *txn, c, table, keys);
      if (key)
        REQUIRE(!txn->commit());
      else
        txn->rollback();
      return key;
    };
    auto k1 = enqueue(1, "inputs", {"img"});
    REQUIRE_MESSAGE(k1, test::why(k1));
    auto k2 = enqueue(2, "rows", {"a", "b", "a"});
    REQUIRE_MESSAGE(k2, test::why(k2));
    // The listener gets the rows' bytes as read, or for one blob the blob pinned (read by the
    // sender, straight to where it goes); the outbox holds no copy (no blob was written).
    REQUIRE(heard.size() == 2);
    CHECK(heard[0]->payload.empty());
    REQUIRE(heard[0]->source);
    REQUIRE(heard[0]->source->size == big.size());
    auto read_source = [](const committed_call& cc) {
      std::string bytes(cc.source->size, '\0');
      auto err = cc.source->read(bytes.data());
      return err ? "error: " + describe(err) : bytes;
    };
    CHECK(read_source(*heard[0]) == big);
    // ... and says where its bytes lie, for a compute process on this host to read them.
    REQUIRE(heard[0]->source->file);
    {
      const auto& file = *heard[0]->source->file;
      CHECK(valid_blob_file_path(file.path));
      auto bytes = read_blob_file(file);
      REQUIRE_MESSAGE(bytes, describe(bytes.error()));
      CHECK(std::string(bytes->begin(), bytes->end()) == big);
    }
    CHECK(!heard[1]->source);
    CHECK(std::string(heard[1]->payload.begin(), heard[1]->payload.end()) == a + b + a);
    CHECK(test::must(db->count(outbox::payload_table)) == 0);
    std::vector<char> out;
    CHECK(!outbox::payload(*db, *k1, out));
    CHECK(std::string(out.begin(), out.end()) == big);
    CHECK(!outbox::payload(*db, *k2, out));
    CHECK(std::string(out.begin(), out.end()) == a + b + a);
    // Typed inputs are checked against the rows' bytes as for any call.
    c.inputs = {make_spec("x", tensor_dtype::u8, {2, 5})};
    auto bad = enqueue(3, "rows", {"a", "b"});
    REQUIRE(!bad);
    CHECK(is(bad.error(), errc::invalid_argument));
    c.inputs.clear();
    // Rows or tables that do not exist are named.
    auto missing = enqueue(4, "rows", {"a", "zz"});
    REQUIRE(!missing);
    CHECK(is(missing.error(), errc::not_found));
    CHECK_MESSAGE(describe(missing.error()).find("no row 'zz' in table 'rows'")
                    != std::string::npos,
                  describe(missing.error()));
    auto no_table = enqueue(5, "nope", {"a"});
    REQUIRE(!no_table);
    CHECK_MESSAGE(describe(no_table.error()).find("no table 'nope'") != std::string::npos,
                  describe(no_table.error()));
    CHECK(!enqueue(6, "rows", {}));
    // A row changed after the call committed: reading the payload again fails, naming it.
    {
      auto txn = db->begin();
      REQUIRE(!txn->put("rows", "b", "SECOND row"));
      REQUIRE(!txn->put_blob("inputs", "img", big + "x"));
      REQUIRE(!txn->commit());
    }
    // The pinned blob still reads as the call's transaction saw it (the row was overwritten,
    // its old blob freed; the pin keeps the segment).
    CHECK(read_source(*heard[0]) == big);
    auto changed = outbox::payload(*db, *k2, out);
    REQUIRE(changed);
    CHECK(is(changed, errc::corrupt_data));
    CHECK_MESSAGE(describe(changed).find("changed after the call committed") != std::string::npos,
                  describe(changed));
    CHECK(is(outbox::payload(*db, *k1, out), errc::corrupt_data));
    // Deleted: the same.
    {
      auto txn = db->begin();
      REQUIRE(!txn->del("rows", "a"));
      REQUIRE(!txn->commit());
    }
    auto gone = outbox::payload(*db, *k2, out);
    REQUIRE(gone);
    CHECK(is(gone, errc::corrupt_data));
    CHECK_MESSAGE(describe(gone).find("no row 'a'") != std::string::npos, describe(gone));
    CHECK(test::must(outbox::pending(*db, "", 10)).size() == 2);
    outbox::set_listener(*db, {});
  }

  TEST_CASE("a payload given away (moved) reaches the listener without a copy and is stored") {
    test::temp_dir dir;
    auto db = open_outbox_db(dir);
    std::shared_ptr<committed_call> last;
    outbox::set_listener(*db, [&](std::shared_ptr<committed_call> c) { last = std::move(c); });
    outbox_call c;
    c.model = "checksum";
    c.result_procedure = "demo.store";
    std::vector<char> payload(2 << 20, 'm');
    const char* where = payload.data();
    call_context ctx;
    ctx.execution_id = 9;
    auto txn = db->begin();
    auto key = outbox::enqueue(ctx, *txn, c, std::move(payload));
    REQUIRE(key);
    REQUIRE(!txn->commit());
    REQUIRE(last);
    CHECK(last->payload.data() == where); // the same buffer
    CHECK(last->payload.size() == size_t{2} << 20);
    std::vector<char> out;
    CHECK(!outbox::payload(*db, *key, out));
    CHECK(out == std::vector<char>(2 << 20, 'm'));
    outbox::set_listener(*db, {});
  }

  TEST_CASE("a call recorded in the procedure's transaction reaches compute and its result is "
            "applied exactly once") {
    uint32_t apply_batch = 1;
    SUBCASE("each result applied in its own transaction") { apply_batch = 1; }
    SUBCASE("results applied in batches of up to 4 (one transaction each)") { apply_batch = 4; }
    test::compute_child compute;
    fixture f;
    f.start_node();
    f.start_dispatcher(compute.port(), apply_batch);
    std::vector<std::string> keys;
    for (int i = 0; i < 20; ++i)
      keys.push_back(f.submit(i, i % 2 == 0 ? 1000 : 2 * max_piece_payload + 3));
    REQUIRE(f.wait_results(20));
    for (int i = 0; i < 20; ++i) {
      auto txn = f.n->db().begin();
      auto row = test::must(txn->get_row("results", "job" + std::to_string(i)));
      txn->rollback();
      REQUIRE(row);
      CHECK((*row)["applied_count"] == 1);
      auto p = payload_for(i, i % 2 == 0 ? 1000 : 2 * max_piece_payload + 3);
      checksum64 c;
      c.update(p.data(), p.size());
      CHECK((*row)["checksum"] == c.digest());
      CHECK(test::must(outbox::done(f.n->db(), keys[i])));
    }
    // The same result delivered again changes nothing.
    nlohmann::json again{{"call", keys[0]},
                         {"result", {{"output", nlohmann::json::binary_t{}}}},
                         {"context", {{"name", "job0"}}}};
    auto dup = f.n->call("demo.store", again, "admin");
    REQUIRE_MESSAGE(dup, test::why(dup));
    CHECK((*dup)["duplicate"] == true);
    auto txn = f.n->db().begin();
    auto row = test::must(txn->get_row("results", "job0"));
    txn->rollback();
    CHECK((*row)["applied_count"] == 1);
    // A result for a call that was never made is refused.
    nlohmann::json bogus{{"call", "ffffffffffffffff.00000000"}, {"context", {{"name", "x"}}}};
    auto none = f.n->call("demo.store", bogus, "admin");
    REQUIRE(!none);
  }

  TEST_CASE("function calls, pieces and results are in the provenance log") {
    test::compute_child compute;
    fixture f;
    f.start_node(/*provenance=*/true);
    f.start_dispatcher(compute.port());
    f.submit(0, 1000);
    f.submit(1, 2 * max_piece_payload + 3); // through shared memory: one message
    REQUIRE(f.wait_results(2));
    f.stop();
    std::map<std::string, int> kinds;
    int shm_pieces = 0;
    std::set<std::string> invoked;
    auto reader = test::must(storage::log_reader::open(f.dir.path() + "/provenance"));
    REQUIRE(!reader.for_each(0, [&](storage::log_record&& r) {
      if (r.kind == storage::log_record::kind_t::invocation) {
        invoked.insert(r.procedure);
      } else {
        auto kind = r.payload.substr(0, r.payload.find(' '));
        ++kinds[kind];
        if (kind == "piece") {
          CHECK(r.sender.rfind("function/", 0) == 0);
          CHECK(r.receiver.rfind("compute@", 0) == 0);
          CHECK(r.payload.find("\"bytes\"") != std::string::npos);
          if (r.payload.find("\"transport\":\"shm\"") != std::string::npos) {
            ++shm_pieces;
            CHECK(r.payload.find("\"bytes\":" + std::to_string(2 * max_piece_payload + 3))
                  != std::string::npos);
          }
        }
      }
      return true;
    }));
    CHECK(invoked.count("demo.submit") == 1);
    CHECK(invoked.count("demo.store") == 1);
    CHECK(kinds["function_call"] >= 2);
    CHECK(kinds["piece"] >= 2);
    CHECK(shm_pieces >= 1);
    CHECK(kinds["result"] >= 2);
    CHECK(kinds["function_result"] >= 2);
  }

  TEST_CASE("calls committed before a node restart are made after it, exactly once") {
    test::compute_child compute;
    fixture f;
    f.start_node(); // no dispatcher: the node "crashes" with its calls only in the outbox
    for (int i = 0; i < 10; ++i)
      f.submit(i, 100000);
    CHECK(test::must(outbox::pending(f.n->db(), "", 1000)).size() == 10);
    f.stop();
    f.start_node();
    CHECK(f.results() == 0);
    f.start_dispatcher(compute.port());
    REQUIRE(f.wait_results(10));
    f.check_results(10, 100000);
    // A second restart sends nothing again.
    f.stop();
    f.start_node();
    f.start_dispatcher(compute.port());
    // A started dispatcher scans the outbox in its first message (a poll it sends itself while
    // it initializes), and only that scan would find calls left from before the restart. The
    // first request may be queued ahead of that poll, the second is queued behind it: after
    // two replies the scan is done, and nothing was sent.
    f.dispatcher_stats();
    CHECK(f.dispatcher_stats()["sent"] == 0);
    f.check_results(10, 100000);
  }

  TEST_CASE("the compute process killed mid-run: every committed call is applied once") {
    // Tasks wait up to 300 ms in the compute process for a batch, so the kill finds some there.
    uint32_t apply_batch = 1;
    SUBCASE("each result applied in its own transaction") { apply_batch = 1; }
    SUBCASE("results applied in batches of up to 4 (one transaction each)") { apply_batch = 4; }
    test::compute_child compute{{"--batch", "checksum=1000:300"}};
    fixture f;
    f.start_node();
    f.start_dispatcher(compute.port(), apply_batch);
    constexpr int n = 30;
    constexpr size_t size = 2 * max_piece_payload + 11;
    for (int i = 0; i < 10; ++i)
      f.submit(i, size);
    REQUIRE(f.wait_results(1));
    for (int i = 10; i < n; ++i)
      f.submit(i, size);
    compute.kill(); // returns once the process is gone, its port closed
    auto before = f.results();
    CHECK(before < n);
    CHECK_FALSE(test::port_accepts(compute.port()));
    compute.start();
    REQUIRE(f.wait_results(n));
    MESSAGE("results before the kill: " << before << " of " << n);
    f.check_results(n, size);
  }

} // TEST_SUITE
