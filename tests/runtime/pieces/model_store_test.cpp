// The model store on loopback: `comb model put|list|get|activate` child processes against a
// node (in this process, gateway on a TCP port) whose outbox dispatcher feeds a real
// `comb compute` process. Checks chunked storage with digests, read-back byte for byte,
// activation loading the chunks into compute, provenance (every result names the version
// that produced it) and that switching versions fails no call in flight; put refusing files
// that are not models (each with the check's error); store_version, enqueue_activation,
// latest_version and read_version from procedures; activation that fails to load; the
// dispatcher reloading a version into a restarted compute process; and a cluster node's mirror
// of another node's version (comb.model.mirror_chunk, comb.model.mirror, comb.model.active).
#include "actors/outbox_dispatcher.hpp"
#include "runtime/pieces/builtin_tasks.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/model_store.hpp"
#include "node/node.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/system_config.hpp"
#include "storage/transaction.hpp"
#include "tests/compute_util.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

using namespace comb;
using namespace comb::runtime;
using namespace std::chrono_literals;

namespace {

using test::read_file;

std::string random_text(size_t n, uint32_t seed) {
  std::string s(n, ' ');
  std::mt19937 rng{seed};
  for (auto& c : s)
    c = static_cast<char>(rng());
  return s;
}

struct cli_result {
  int status;
  std::string output;
};

cli_result run_cli(const test::temp_dir& dir, std::vector<std::string> args) {
  static int n = 0;
  auto log = dir.path() + "/cli-" + std::to_string(++n) + ".log";
  args.insert(args.begin(), test::comb_binary());
  std::fflush(stdout);
  test::child_process p{args, log};
  int status = p.wait();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, read_file(log)};
}

struct model_config : system_config {
  model_config() : system_config(2) { add_compute_types(*this); }
};

std::shared_ptr<procedure_registry> procedures() {
  auto procs = std::make_shared<procedure_registry>();
  model_store::add_procedures(*procs, {"admin"});
  procs->add_table("inferences");
  procedure_options o;
  o.roles = {"admin"};
  o.partition_by = "name";
  procs->add(
    "demo.infer",
    [](call_context& ctx, storage::transaction& txn,
       const nlohmann::json& args) -> caf::expected<nlohmann::json> {
      auto v = model_store::active_version(txn, "mlp");
      if (!v)
        return v.error();
      outbox_call c;
      c.model = "mlp";
      c.model_version = *v;
      c.result_procedure = "demo.store";
      c.context = {{"name", arg<std::string>(args, "name")}};
      auto key = outbox::enqueue(ctx, txn, c, arg<std::string>(args, "input"));
      if (!key)
        return key.error();
      return nlohmann::json{{"pinned", *v}};
    },
    o);
  // A procedure that stores a whole file as a version (and activates it), as a training
  // result procedure does.
  procs->add(
    "demo.store_version",
    [](call_context& ctx, storage::transaction& txn,
       const nlohmann::json& args) -> caf::expected<nlohmann::json> {
      auto name = arg<std::string>(args, "name");
      auto bytes = base64_decode(arg<std::string>(args, "data"));
      if (!bytes)
        return bytes.error();
      auto latest = model_store::latest_version(txn, name);
      if (!latest)
        return latest.error();
      auto version = args.value("version", *latest + 1);
      auto row = model_store::store_version(ctx, txn, name, version, *bytes,
                                            {{"trained_from", *latest}});
      if (!row)
        return row.error();
      if (args.value("activate", false)) {
        auto key = model_store::enqueue_activation(ctx, txn, name, version);
        if (!key)
          return key.error();
        (*row)["call"] = *key;
      }
      return *row;
    },
    o);
  procs->add(
    "demo.latest",
    [](call_context&, storage::transaction& txn,
       const nlohmann::json& args) -> caf::expected<nlohmann::json> {
      auto v = model_store::latest_version(txn, arg<std::string>(args, "name"));
      if (!v)
        return v.error();
      return nlohmann::json{{"latest", *v}};
    },
    o);
  // A typed call: "x" u8 [n, 784] to the active version of "digits"; its result procedure
  // reads the output tensors.
  procs->add(
    "demo.classify",
    [](call_context& ctx, storage::transaction& txn,
       const nlohmann::json& args) -> caf::expected<nlohmann::json> {
      auto v = model_store::active_version(txn, "digits");
      if (!v)
        return v.error();
      auto x = base64_decode(arg<std::string>(args, "x"));
      if (!x)
        return x.error();
      outbox_call c;
      c.model = "digits";
      c.model_version = *v;
      c.result_procedure = "demo.classified";
      c.context = {{"name", arg<std::string>(args, "name")}};
      c.inputs = {make_spec("x", tensor_dtype::u8, {static_cast<int64_t>(x->size() / 784), 784})};
      auto key = outbox::enqueue(ctx, txn, c, *x);
      if (!key)
        return key.error();
      return nlohmann::json{{"call", *key}};
    },
    o);
  procedure_options r;
  r.roles = {"admin"};
  outbox::add_result_procedure(
    *procs, "demo.classified",
    [](call_context&, storage::transaction& txn,
       const nlohmann::json& args) -> caf::expected<nlohmann::json> {
      nlohmann::json row;
      if (auto e = args.find("error"); e != args.end()) {
        row["error"] = *e;
      } else {
        auto out = result_tensors(args.at("result"));
        if (!out)
          return out.error();
        auto views = out->views();
        if (!views)
          return views.error();
        row["outputs"] = args.at("result").at("outputs");
        for (const auto& t : *views)
          if (t.spec->name == "label" && t.spec->type() == tensor_dtype::i32) {
            std::vector<int32_t> labels(t.size / 4);
            std::memcpy(labels.data(), t.data, t.size);
            row["labels"] = labels;
          }
      }
      if (auto err = txn.put_row("inferences", args["context"]["name"].get<std::string>(), row))
        return err;
      return nlohmann::json{};
    },
    r);
  outbox::add_result_procedure(
    *procs, "demo.store",
    [](call_context&, storage::transaction& txn,
       const nlohmann::json& args) -> caf::expected<nlohmann::json> {
      nlohmann::json row;
      if (auto e = args.find("error"); e != args.end())
        row["error"] = *e;
      else
        row = {{"model_version", args["result"]["model_version"]},
               {"model_digest", args["result"]["model_digest"]}};
      if (auto err = txn.put_row("inferences", args["context"]["name"].get<std::string>(), row))
        return err;
      return nlohmann::json{};
    },
    r);
  return procs;
}

/// A node (no compute process, no dispatcher) with the test's procedures.
struct store_fixture {
  test::temp_dir dir;
  model_config cfg;
  caf::actor_system sys{cfg};
  std::unique_ptr<node> n;

  store_fixture() {
    node_config nc;
    nc.data_dir = dir.path() + "/data";
    nc.partitions = 2;
    nc.durability = storage::durability::async;
    auto started = node::start(sys, nc, procedures());
    REQUIRE_MESSAGE(started, test::why(started));
    n = std::move(*started);
  }

  /// Stores `bytes` as `name` `version` with comb.model.put_chunk and comb.model.put.
  caf::expected<nlohmann::json> put(const std::string& name, uint32_t version,
                                    const std::string& bytes, const std::string& kind = {}) {
    uint32_t chunks = 0;
    for (size_t off = 0; off < bytes.size() || chunks == 0; off += model_store::chunk_size) {
      auto part = std::string_view{bytes}.substr(off, model_store::chunk_size);
      auto r = n->call("comb.model.put_chunk",
                       {{"name", name},
                        {"version", version},
                        {"chunk_no", chunks++},
                        {"data", base64_encode(part)}},
                       "admin");
      if (!r)
        return r.error();
      if (off + part.size() >= bytes.size())
        break;
    }
    nlohmann::json args{{"name", name},
                        {"version", version},
                        {"chunk_count", chunks},
                        {"digest", model_digest(bytes.data(), bytes.size())}};
    if (!kind.empty())
      args["kind"] = kind;
    return n->call("comb.model.put", args, "admin");
  }

  /// comb.model.list's row of `name` `version`, or null.
  nlohmann::json row(const std::string& name, uint32_t version) {
    auto list = n->call("comb.model.list", nlohmann::json::object(), "admin");
    REQUIRE_MESSAGE(list, test::why(list));
    for (const auto& m : *list)
      if (m.value("name", "") == name && m.value("version", 0u) == version)
        return m;
    return nullptr;
  }
};

/// A safetensors file whose header has no __metadata__.
std::string safetensors_without_kind() {
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(8, '\0');
}

/// The MobileNetV2 TFLite file of the shared data folder, or "" when it is missing.
std::string mobilenet_tflite() {
  auto path = std::string{COMB_SOURCE_DIR}
              + "/../shared/data/models/mobilenet_v2_1.0_224_quant.tflite";
  if (!std::filesystem::exists(path))
    return {};
  return read_file(path);
}

} // namespace

TEST_SUITE("runtime.pieces.model_store") {
  TEST_CASE("put refuses files that are not models, naming the check's error, and stores none") {
    store_fixture f;
    auto refused = [&](const std::string& name, const std::string& bytes,
                       const std::string& kind = {}) {
      auto r = f.put(name, 1, bytes, kind);
      REQUIRE_MESSAGE(!r, name << " was stored");
      CHECK(is(r.error(), errc::bad_model));
      CHECK(f.row(name, 1).is_null());
      return describe(r.error());
    };
    auto e = refused("random", random_text(5000, 3));
    CHECK_MESSAGE(
      e.find("model 'random' version 1 is refused: not a model file") != std::string::npos, e);
    e = refused("nokind", safetensors_without_kind());
    CHECK_MESSAGE(e.find("safetensors file without __metadata__ comb.kind") != std::string::npos,
                  e);
    CHECK_MESSAGE(e.find("registered kinds: ") != std::string::npos, e);

    auto tflite = mobilenet_tflite();
    if (tflite.empty()) {
      MESSAGE("skipped: ../shared/data/models/mobilenet_v2_1.0_224_quant.tflite is missing");
    } else {
      e = refused("cut", tflite.substr(0, 100 * 1024));
      CHECK_MESSAGE(e.find("model 'cut' version 1 is refused: TFLite") != std::string::npos, e);
    }

    // A real file is stored with its kind and summary; raw bytes only when asked for.
    auto mlp = test::must(make_mlp_file({784, 16, 10}, 7));
    e = refused("wrongkind", mlp, "centernet");
    CHECK_MESSAGE(e.find("is a 'mlp' model, not the 'centernet' given") != std::string::npos, e);
    auto ok = f.put("digits", 1, mlp);
    REQUIRE_MESSAGE(ok, test::why(ok));
    CHECK((*ok)["kind"] == "mlp");
    auto row = f.row("digits", 1);
    REQUIRE(!row.is_null());
    CHECK(row["kind"] == "mlp");
    CHECK(!row.value("summary", "").empty());
    auto raw = f.put("blob", 1, random_text(5000, 4), "raw");
    REQUIRE_MESSAGE(raw, test::why(raw));
    CHECK(f.row("blob", 1)["kind"] == "raw");
  }

  TEST_CASE("a mirror of another node's version is stored only whole and matching its digest, "
            "then active; this node's own versions and other digests are refused") {
    store_fixture f;
    auto mlp = test::must(make_mlp_file({784, 16, 10}, 5));
    nlohmann::json owner_row{{"name", "far"},
                             {"version", 3},
                             {"digest", model_digest(mlp.data(), mlp.size())},
                             {"chunks", 1},
                             {"kind", "mlp"},
                             {"bytes", mlp.size()},
                             {"loaded", true},
                             {"activation", "n2-key"}};
    nlohmann::json args{{"name", "far"}, {"version", 3}, {"owner", "n2"}, {"row", owner_row}};
    auto mirror = [&] { return f.n->call("comb.model.mirror", args, "admin"); };
    auto chunk = [&](const std::string& bytes) {
      return f.n->call(
        "comb.model.mirror_chunk",
        {{"name", "far"}, {"version", 3}, {"chunk_no", 0}, {"data", base64_encode(bytes)}},
        "admin");
    };
    auto r = mirror();
    REQUIRE_MESSAGE(r, test::why(r));
    CHECK((*r)["mirrored"] == false);
    CHECK((*r)["missing"] == nlohmann::json::array({0}));
    // A chunk that does not add up to the digest is dropped and asked for again.
    auto bad = mlp;
    bad[bad.size() / 2] ^= 1;
    REQUIRE(chunk(bad));
    r = mirror();
    REQUIRE_MESSAGE(r, test::why(r));
    CHECK((*r)["mirrored"] == false);
    CHECK((*r)["missing"] == nlohmann::json::array({0}));
    CHECK_MESSAGE(r->value("dropped", "").find("not " + owner_row["digest"].get<std::string>())
                    != std::string::npos,
                  r->dump());
    CHECK(f.row("far", 3).is_null());
    REQUIRE(chunk(mlp));
    r = mirror();
    REQUIRE_MESSAGE(r, test::why(r));
    CHECK((*r)["mirrored"] == true);
    auto row = f.row("far", 3);
    REQUIRE(!row.is_null());
    CHECK(row["mirror_of"] == "n2");
    CHECK(row["active"] == true);
    CHECK(row["loaded"] == false); // this node's compute process has not loaded it
    CHECK(!row.contains("activation"));
    auto active = f.n->call("comb.model.active", {{"name", "far"}}, "admin");
    REQUIRE_MESSAGE(active, test::why(active));
    CHECK((*active)["version"] == 3);
    CHECK(mirror()); // again: nothing to copy, still active
    // The owner's version 3 with another digest: refused, the mirror stays.
    args["row"]["digest"] = std::string(64, 'a');
    r = mirror();
    REQUIRE(!r);
    CHECK_MESSAGE(is(r.error(), errc::corrupt_data), test::why(r));
    // A version this node stores as its own is never overwritten by a mirror.
    REQUIRE(f.put("mine", 1, mlp));
    args = {{"name", "mine"}, {"version", 1}, {"owner", "n2"}, {"row", owner_row}};
    r = mirror();
    REQUIRE(!r);
    CHECK_MESSAGE(is(r.error(), errc::already_exists), test::why(r));
    CHECK(!f.row("mine", 1).contains("mirror_of"));
    auto none = f.n->call("comb.model.active", {{"name", "nothing"}}, "admin");
    REQUIRE(!none);
    CHECK(is(none.error(), errc::bad_model));
  }

  TEST_CASE("store_version, enqueue_activation, latest_version and read_version") {
    store_fixture f;
    auto latest = [&](const std::string& name) {
      auto r = f.n->call("demo.latest", {{"name", name}}, "admin");
      REQUIRE_MESSAGE(r, test::why(r));
      return r->at("latest").get<uint32_t>();
    };
    CHECK(latest("digits") == 0);
    auto v1 = test::must(make_mlp_file({784, 16, 10}, 1));
    auto v2 = test::must(make_mlp_file({784, 16, 10}, 2));
    auto big = test::must(make_mlp_file({784, 600, 10}, 3)); // over one chunk
    REQUIRE(big.size() > model_store::chunk_size);
    auto s1 = f.n->call("demo.store_version", {{"name", "digits"}, {"data", base64_encode(v1)}},
                        "admin");
    REQUIRE_MESSAGE(s1, test::why(s1));
    CHECK((*s1)["version"] == 1);
    CHECK((*s1)["kind"] == "mlp");
    CHECK((*s1)["trained_from"] == 0);
    CHECK((*s1)["digest"] == model_digest(v1.data(), v1.size()));
    CHECK(latest("digits") == 1);
    CHECK(latest("digit") == 0); // a prefix of another name has no versions
    // A version is immutable.
    auto again = f.n->call("demo.store_version",
                           {{"name", "digits"}, {"version", 1}, {"data", base64_encode(v2)}},
                           "admin");
    REQUIRE(!again);
    CHECK(is(again.error(), errc::already_exists));
    // Bytes that are not a model: refused, nothing stored.
    auto junk = f.n->call("demo.store_version",
                          {{"name", "digits"}, {"data", base64_encode(random_text(999, 9))}},
                          "admin");
    REQUIRE(!junk);
    CHECK_MESSAGE(describe(junk.error()).find("model 'digits' version 2 is refused")
                    != std::string::npos,
                  describe(junk.error()));
    CHECK(latest("digits") == 1);
    // Stored and activated in one transaction: the load call is in the outbox.
    auto s2 = f.n->call("demo.store_version",
                        {{"name", "digits"}, {"data", base64_encode(big)}, {"activate", true}},
                        "admin");
    REQUIRE_MESSAGE(s2, test::why(s2));
    CHECK((*s2)["version"] == 2);
    CHECK((*s2)["chunks"] == 2);
    auto call = test::must(outbox::find(f.n->db(), (*s2)["call"].get<std::string>()));
    REQUIRE(call);
    CHECK(call->call.kind == piece_kind::load_model);
    CHECK(call->call.model == "digits");
    CHECK(call->call.model_version == 2);
    CHECK(f.row("digits", 2)["activation"] == (*s2)["call"]);
    // The call names the version's chunks instead of holding a copy of the file (issue 16):
    // no payload blob while it is pending, and its payload read back is the file.
    {
      auto key = (*s2)["call"].get<std::string>();
      auto txn = f.n->db().begin();
      auto row = test::must(txn->get_row(outbox::calls_table, key));
      REQUIRE(row);
      CHECK_MESSAGE(row->contains("payload_rows"), row->dump());
      txn->rollback();
      CHECK(test::must(f.n->db().count(outbox::payload_table)) == 0);
      std::vector<char> payload;
      REQUIRE(!outbox::payload(f.n->db(), key, payload));
      CHECK(std::string(payload.begin(), payload.end()) == big);
    }

    auto back = model_store::read_version(f.n->db(), "digits", 2);
    REQUIRE_MESSAGE(back, test::why(back));
    CHECK(back->first == big);
    CHECK(back->second == model_digest(big.data(), big.size()));
    auto none = model_store::read_version(f.n->db(), "digits", 0);
    REQUIRE(!none); // no active version yet
    CHECK(is(none.error(), errc::bad_model));
    auto missing = model_store::read_version(f.n->db(), "digits", 5);
    REQUIRE(!missing);
    CHECK(is(missing.error(), errc::not_found));
    // A damaged chunk is named, not returned.
    {
      auto txn = f.n->db().begin();
      REQUIRE(!txn->put_blob(model_store::chunks_table, "digits/0000000001/00000000", "xx"));
      REQUIRE(!txn->commit());
    }
    auto damaged = model_store::read_version(f.n->db(), "digits", 1);
    REQUIRE(!damaged);
    CHECK(is(damaged.error(), errc::corrupt_data));
  }

  TEST_CASE("comb model put, list, get and activate; results name their model version") {
    test::temp_dir dir;
    auto compute_port = test::free_port();
    std::fflush(stdout);
    test::child_process compute{{test::comb_binary(), "compute", "--listen",
                                 "127.0.0.1:" + std::to_string(compute_port), "--threads", "2"},
                                dir.path() + "/compute.log"};
    REQUIRE(test::wait_for_line(dir.path() + "/compute.log", "listening on", 30s, &compute));
    model_config cfg;
    caf::actor_system sys{cfg};
    node_config nc;
    nc.data_dir = dir.path() + "/data";
    nc.partitions = 2;
    nc.durability = storage::durability::async;
    nc.listen = true;
    auto started = node::start(sys, nc, procedures());
    REQUIRE_MESSAGE(started, test::why(started));
    auto& n = **started;
    actors::dispatcher_config dc;
    dc.function.compute_port = static_cast<uint16_t>(compute_port);
    auto dispatcher = actors::spawn_outbox_dispatcher(sys, n.db(), n.route(), dc);
    auto node_ep = "127.0.0.1:" + std::to_string(n.port());

    auto v1 = random_text(2 * model_store::chunk_size + 12345, 1);
    auto v2 = random_text(model_store::chunk_size / 2, 2);
    { std::ofstream{dir.path() + "/v1.bin", std::ios::binary} << v1; }
    { std::ofstream{dir.path() + "/v2.bin", std::ios::binary} << v2; }
    auto put1 = run_cli(dir, {"model", "put", "--node", node_ep, "--name", "mlp", "--version", "1",
                              "--file", dir.path() + "/v1.bin", "--raw"});
    REQUIRE_MESSAGE(put1.status == 0, put1.output);
    CHECK(put1.output.find(model_digest(v1.data(), v1.size())) != std::string::npos);
    auto put2 = run_cli(dir, {"model", "put", "--node", node_ep, "--name", "mlp", "--version", "2",
                              "--file", dir.path() + "/v2.bin", "--raw"});
    REQUIRE_MESSAGE(put2.status == 0, put2.output);
    // Versions are immutable: other bytes under an existing version are refused.
    auto clash = run_cli(dir, {"model", "put", "--node", node_ep, "--name", "mlp", "--version", "1",
                               "--file", dir.path() + "/v2.bin", "--raw"});
    CHECK(clash.status != 0);
    CHECK(clash.output.find("already_exists") != std::string::npos);

    auto list = run_cli(dir, {"model", "list", "--node", node_ep});
    REQUIRE(list.status == 0);
    CHECK(list.output.find("\"version\":1") != std::string::npos);
    CHECK(list.output.find("\"version\":2") != std::string::npos);
    CHECK(list.output.find("\"chunks\":3") != std::string::npos);

    auto get = run_cli(dir, {"model", "get", "--node", node_ep, "--name", "mlp", "--version", "1",
                             "--out", dir.path() + "/back.bin"});
    REQUIRE_MESSAGE(get.status == 0, get.output);
    CHECK(read_file(dir.path() + "/back.bin") == v1);
    auto missing = run_cli(dir, {"model", "get", "--node", node_ep, "--name", "mlp", "--version",
                                 "7", "--out", dir.path() + "/none.bin"});
    CHECK(missing.status != 0);
    CHECK(missing.output.find("no model 'mlp' version 7") != std::string::npos);

    // No active version yet: a call cannot be pinned.
    auto early = n.call("demo.infer", {{"name", "early"}, {"input", "x"}}, "admin");
    REQUIRE(!early);
    CHECK(describe(early.error()).find("no active version") != std::string::npos);

    // A version becomes active once the compute process has loaded it (an outbox call whose
    // result procedure activates it), after `comb model activate` returns.
    auto wait_active = [&](uint32_t version) {
      return test::wait_until(
        [&] {
          auto txn = n.db().begin();
          auto v = model_store::active_version(*txn, "mlp");
          txn->rollback();
          return v && *v == version;
        },
        30s, "mlp version " + std::to_string(version) + " to be active");
    };
    auto act1 = run_cli(dir, {"model", "activate", "--node", node_ep, "--name", "mlp", "--version",
                              "1"});
    REQUIRE_MESSAGE(act1.status == 0, act1.output);
    REQUIRE(wait_active(1));

    // The compute process holds exactly the stored bytes.
    auto compute_actor = sys.middleman().remote_actor("127.0.0.1", compute_port);
    REQUIRE(compute_actor);
    caf::scoped_actor self{sys};
    std::string models;
    self->request(*compute_actor, 10s, models_atom::value)
      .receive([&](std::string& s) { models = s; }, [&](caf::error& e) { FAIL(describe(e)); });
    CHECK(models.find(model_digest(v1.data(), v1.size())) != std::string::npos);

    // Calls pinned to v1 are in flight while v2 is activated: none fails, all ran on v1.
    for (int i = 0; i < 10; ++i)
      REQUIRE(n.call("demo.infer", {{"name", "a" + std::to_string(i)}, {"input", v2}}, "admin"));
    auto act2 = run_cli(dir, {"model", "activate", "--node", node_ep, "--name", "mlp", "--version",
                              "2"});
    REQUIRE_MESSAGE(act2.status == 0, act2.output);
    REQUIRE(wait_active(2));
    for (int i = 0; i < 5; ++i)
      REQUIRE(n.call("demo.infer", {{"name", "b" + std::to_string(i)}, {"input", "y"}}, "admin"));
    REQUIRE(test::wait_until([&] { return test::must(n.db().count("inferences")) >= 15; }, 60s,
                             "15 rows in inferences"));
    {
      auto txn = n.db().begin();
      for (int i = 0; i < 10; ++i) {
        auto row = test::must(txn->get_row("inferences", "a" + std::to_string(i)));
        REQUIRE(row);
        CHECK(row->count("error") == 0);
        CHECK((*row)["model_version"] == 1);
        CHECK((*row)["model_digest"] == model_digest(v1.data(), v1.size()));
      }
      for (int i = 0; i < 5; ++i) {
        auto row = test::must(txn->get_row("inferences", "b" + std::to_string(i)));
        REQUIRE(row);
        CHECK((*row)["model_version"] == 2);
        CHECK((*row)["model_digest"] == model_digest(v2.data(), v2.size()));
      }
      txn->rollback();
    }
    auto bad = run_cli(dir,
                       {"model", "activate", "--node", node_ep, "--name", "mlp", "--version", "9"});
    CHECK(bad.status != 0);
    CHECK(bad.output.find("not stored") != std::string::npos);

    self->send_exit(dispatcher, caf::exit_reason::user_shutdown);
    self->wait_for(dispatcher);
    started->reset();
  }

  TEST_CASE("activate names a failed load and the previous version keeps serving; a restarted "
            "compute process gets the version again from the dispatcher") {
    test::temp_dir dir;
    test::compute_child compute;
    model_config cfg;
    caf::actor_system sys{cfg};
    node_config nc;
    nc.data_dir = dir.path() + "/data";
    nc.partitions = 2;
    nc.durability = storage::durability::async;
    nc.listen = true;
    auto started = node::start(sys, nc, procedures());
    REQUIRE_MESSAGE(started, test::why(started));
    auto& n = **started;
    actors::dispatcher_config dc;
    dc.function.compute_port = compute.port();
    dc.function.retry_delay = 100ms;
    dc.function.max_attempts = 100;
    auto dispatcher = actors::spawn_outbox_dispatcher(sys, n.db(), n.route(), dc);
    caf::scoped_actor self{sys};
    auto node_ep = "127.0.0.1:" + std::to_string(n.port());

    auto v1 = random_text(300000, 5);
    // A model file cut short, stored raw (unchecked): the compute process cannot load it.
    auto whole = test::must(make_mlp_file({784, 16, 10}, 5));
    auto v2 = whole.substr(0, whole.size() - 1000);
    { std::ofstream{dir.path() + "/v1.bin", std::ios::binary} << v1; }
    { std::ofstream{dir.path() + "/v2.bin", std::ios::binary} << v2; }
    for (int v : {1, 2}) {
      auto put = run_cli(dir, {"model", "put", "--node", node_ep, "--name", "mlp", "--version",
                               std::to_string(v), "--file",
                               dir.path() + "/v" + std::to_string(v) + ".bin", "--raw"});
      REQUIRE_MESSAGE(put.status == 0, put.output);
    }
    auto act1 = run_cli(dir, {"model", "activate", "--node", node_ep, "--name", "mlp", "--version",
                              "1", "--timeout", "60"});
    REQUIRE_MESSAGE(act1.status == 0, act1.output);
    CHECK_MESSAGE(act1.output.find("\"active\":true") != std::string::npos, act1.output);
    auto act2 = run_cli(dir, {"model", "activate", "--node", node_ep, "--name", "mlp", "--version",
                              "2", "--timeout", "60"});
    CHECK(act2.status != 0);
    CHECK_MESSAGE(act2.output.find("bad_model: model 'mlp' version 2 failed to load")
                    != std::string::npos,
                  act2.output);
    CHECK_MESSAGE(act2.output.find("version 1 stays active") != std::string::npos, act2.output);
    {
      auto txn = n.db().begin();
      CHECK(test::must(model_store::active_version(*txn, "mlp")) == 1);
      txn->rollback();
    }

    auto result_of = [&](const std::string& name) {
      nlohmann::json row;
      test::wait_until(
        [&] {
          auto txn = n.db().begin();
          auto r = test::must(txn->get_row("inferences", name));
          txn->rollback();
          if (r)
            row = *r;
          return r.has_value();
        },
        60s, "a result for " + name);
      return row;
    };
    REQUIRE(n.call("demo.infer", {{"name", "before"}, {"input", "x"}}, "admin"));
    auto before = result_of("before");
    CHECK_MESSAGE(before.count("error") == 0, before.dump());
    CHECK(before["model_version"] == 1);

    // The compute process restarts empty: the next call's version is loaded again.
    compute.kill();
    compute.start();
    REQUIRE(n.call("demo.infer", {{"name", "after"}, {"input", "y"}}, "admin"));
    auto after = result_of("after");
    CHECK_MESSAGE(after.count("error") == 0, after.dump());
    CHECK(after["model_version"] == 1);
    CHECK(after["model_digest"] == model_digest(v1.data(), v1.size()));
    std::string stats;
    self->request(dispatcher, 10s, caf::get_atom::value)
      .receive([&](std::string& x) { stats = x; }, [&](caf::error& e) { FAIL(describe(e)); });
    auto j = nlohmann::json::parse(stats);
    CHECK_MESSAGE(j["reloads_done"].get<int>() >= 1, stats);
    CHECK_MESSAGE(j["reloads_exhausted"] == 0, stats);

    self->send_exit(dispatcher, caf::exit_reason::user_shutdown);
    self->wait_for(dispatcher);
    started->reset();
  }

  TEST_CASE("a typed call runs on the compute process and its result procedure reads the "
            "output tensors") {
    test::temp_dir dir;
    test::compute_child compute;
    model_config cfg;
    caf::actor_system sys{cfg};
    node_config nc;
    nc.data_dir = dir.path() + "/data";
    nc.partitions = 2;
    nc.durability = storage::durability::async;
    auto started = node::start(sys, nc, procedures());
    REQUIRE_MESSAGE(started, test::why(started));
    auto& n = **started;
    actors::dispatcher_config dc;
    dc.function.compute_port = compute.port();
    auto dispatcher = actors::spawn_outbox_dispatcher(sys, n.db(), n.route(), dc);
    caf::scoped_actor self{sys};

    auto file = test::must(make_mlp_file({784, 32, 10}, 11));
    auto stored = n.call("demo.store_version",
                         {{"name", "digits"}, {"data", base64_encode(file)}, {"activate", true}},
                         "admin");
    REQUIRE_MESSAGE(stored, test::why(stored));
    REQUIRE(test::wait_until(
      [&] {
        auto txn = n.db().begin();
        auto v = model_store::active_version(*txn, "digits");
        txn->rollback();
        return v && *v == 1;
      },
      60s, "digits version 1 to be active"));

    // Three images: the labels must match the runner run here on the same bytes.
    constexpr int images = 3;
    std::string x(images * 784, '\0');
    std::mt19937 rng{12};
    for (auto& c : x)
      c = static_cast<char>(rng());
    REQUIRE(n.call("demo.classify", {{"name", "typed"}, {"x", base64_encode(x)}}, "admin"));
    REQUIRE(test::wait_until([&] { return test::must(n.db().count("inferences")) >= 1; }, 60s,
                             "the typed call's result"));
    std::optional<nlohmann::json> row;
    {
      auto txn = n.db().begin(); // ends before the node does
      row = test::must(txn->get_row("inferences", "typed"));
      txn->rollback();
    }
    REQUIRE(row);
    REQUIRE_MESSAGE(row->count("labels") == 1, row->dump());
    auto specs = test::must(specs_from_json((*row)["outputs"]));
    REQUIRE(specs.size() == 2);
    CHECK(specs[0].describe() == "label i32 [3]");
    CHECK(specs[1].describe() == "score f32 [3]"); // probs only when asked (with_probs)

    auto runner = find_runner("mlp");
    REQUIRE(runner);
    auto local = test::must(runner->load(file, kernels::cpu()));
    task_tensors task;
    task.tensors.add("x", tensor_dtype::u8, {images, 784}, x.data());
    auto want = local->infer({&task});
    REQUIRE(want.size() == 1);
    REQUIRE_MESSAGE(want[0], test::why(want[0]));
    std::vector<int32_t> labels(images);
    std::memcpy(labels.data(), want[0]->bytes.data(), images * 4);
    CHECK((*row)["labels"] == nlohmann::json(labels));

    self->send_exit(dispatcher, caf::exit_reason::user_shutdown);
    self->wait_for(dispatcher);
    started->reset();
  }

  TEST_CASE("a call whose model version stays lost gets model_not_loaded after three reloads, "
            "and calls waiting for one version share its reloads") {
    // A stand-in compute process that loads every version (answering after 300 ms, so that
    // calls failing meanwhile wait for that load) and forgets it at once.
    test::temp_dir dir;
    model_config cfg;
    caf::actor_system sys{cfg};
    auto loads = std::make_shared<std::atomic<int>>(0);
    using later_atom = caf::atom_constant<caf::atom("later")>;
    auto forgetful = sys.spawn([loads](caf::event_based_actor* self) -> caf::behavior {
      auto pending = std::make_shared<std::map<uint64_t, caf::response_promise>>();
      auto results = std::make_shared<std::map<uint64_t, task_result>>();
      return {
        [=](piece_atom, std::vector<char>& bytes) -> caf::result<task_result> {
          auto p = decode_piece(std::move(bytes));
          if (!p)
            return p.error();
          if (!is_load(p->kind)) // the dispatcher reloads with reload_model
            return make_error(errc::model_not_loaded, "task " + std::to_string(p->task_id)
                                                        + ": model '" + p->model_id + "' version "
                                                        + std::to_string(p->model_version)
                                                        + " is not loaded");
          ++*loads;
          task_result r;
          r.task_id = p->task_id;
          r.complete = true;
          r.kind = static_cast<uint8_t>(p->kind);
          r.model = p->model_id;
          r.model_version = p->model_version;
          r.model_digest = model_digest(p->payload.data(), p->payload.size());
          (*pending)[r.task_id] = self->make_response_promise();
          (*results)[r.task_id] = r;
          self->delayed_send(self, 300ms, later_atom::value, r.task_id);
          return caf::delegated<task_result>{};
        },
        [=](later_atom, uint64_t id) {
          (*pending)[id].deliver((*results)[id]);
          pending->erase(id);
          results->erase(id);
        },
      };
    });
    auto port = sys.middleman().publish(forgetful, 0, "127.0.0.1");
    REQUIRE_MESSAGE(port, test::why(port));
    node_config nc;
    nc.data_dir = dir.path() + "/data";
    nc.partitions = 2;
    nc.durability = storage::durability::async;
    auto started = node::start(sys, nc, procedures());
    REQUIRE_MESSAGE(started, test::why(started));
    auto& n = **started;
    actors::dispatcher_config dc;
    dc.function.compute_port = *port;
    auto dispatcher = actors::spawn_outbox_dispatcher(sys, n.db(), n.route(), dc);
    caf::scoped_actor self{sys};

    // Version 1 stored raw and made active by hand (the stand-in forgets it anyway).
    auto model = random_text(5000, 8);
    uint32_t chunks = 1;
    REQUIRE(n.call(
      "comb.model.put_chunk",
      {{"name", "mlp"}, {"version", 1}, {"chunk_no", 0}, {"data", base64_encode(model)}}, "admin"));
    REQUIRE(n.call("comb.model.put",
                   {{"name", "mlp"},
                    {"version", 1},
                    {"chunk_count", chunks},
                    {"digest", model_digest(model.data(), model.size())},
                    {"kind", "raw"}},
                   "admin"));
    {
      auto txn = n.db().begin();
      REQUIRE(!txn->put_row(model_store::active_table, "mlp", {{"version", 1}}));
      REQUIRE(!txn->commit());
    }
    constexpr int calls = 5;
    for (int i = 0; i < calls; ++i)
      REQUIRE(n.call("demo.infer", {{"name", "c" + std::to_string(i)}, {"input", "x"}}, "admin"));
    REQUIRE(test::wait_until([&] { return test::must(n.db().count("inferences")) >= calls; }, 60s,
                             "a final result for every call"));
    {
      auto txn = n.db().begin();
      for (int i = 0; i < calls; ++i) {
        auto row = test::must(txn->get_row("inferences", "c" + std::to_string(i)));
        REQUIRE(row);
        auto e = row->value("error", "");
        CHECK_MESSAGE(e.find("model_not_loaded") != std::string::npos, e);
        CHECK_MESSAGE(e.find("still not loaded after 3 reloads") != std::string::npos, e);
      }
      txn->rollback();
    }
    std::string stats;
    self->request(dispatcher, 10s, caf::get_atom::value)
      .receive([&](std::string& x) { stats = x; }, [&](caf::error& e) { FAIL(describe(e)); });
    auto j = nlohmann::json::parse(stats);
    CHECK_MESSAGE(j["reloads_exhausted"] == calls, stats);
    CHECK_MESSAGE(j["reload_errors"] == 0, stats);
    // Each call waited for three reloads; calls that failed while one was in flight shared
    // it (all five, unless this machine stalled for most of 300 ms).
    MESSAGE("reload_model tasks the stand-in answered: " << loads->load());
    CHECK_MESSAGE(loads->load() >= 3, stats);
    CHECK_MESSAGE(loads->load() <= 6, "loads " << loads->load() << " " << stats);
    CHECK(j["reloads_done"] == loads->load());

    self->send_exit(dispatcher, caf::exit_reason::user_shutdown);
    self->wait_for(dispatcher);
    self->send_exit(forgetful, caf::exit_reason::user_shutdown);
    started->reset();
  }

} // TEST_SUITE
