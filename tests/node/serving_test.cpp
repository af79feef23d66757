// Serving through the whole path: a node (in this process) with its outbox dispatcher and a
// `comb compute` child process on loopback run a real MLP. Checks that the outputs through the
// path equal the same runner's run in-process; that activating version 2 while calls run
// fails none of them and every result row names the version that produced it (and its
// output is that version's); that `kill -9` of the compute process mid-batch loses nothing
// (the dispatcher reloads the model into the new process and every result is applied once);
// and that a training call killed with its compute process is run again from the stored
// version and stores the trained version once.
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "node/node.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/model_runner.hpp"
#include "runtime/pieces/model_store.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/system_config.hpp"
#include "storage/transaction.hpp"
#include "tests/compute_util.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

using namespace comb;
using namespace comb::runtime;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr int64_t images = 100; // per call
constexpr int64_t pixels = 784;

/// The input of call `n`: `images` random images (a pure function of n).
std::string input_of(int64_t n) {
  std::string s(images * pixels, '\0');
  std::mt19937 rng{static_cast<uint32_t>(n)};
  for (auto& c : s)
    c = static_cast<char>(rng());
  return s;
}

/// The test's procedures: t.infer {n} classifies input_of(n) with the active version of
/// "mlp"; t.done writes the label tensor and the version to table results; t.train trains
/// from the latest stored version; t.trained stores the trained file as the next version.
std::shared_ptr<procedure_registry> procedures() {
  auto procs = std::make_shared<procedure_registry>();
  procs->add_table("results");
  procedure_options opts;
  opts.roles = {"*"};
  opts.partition_by = "n";
  opts.max_args_bytes = size_t{8} << 20;
  procs->add(
    "t.infer",
    [](call_context& ctx, storage::transaction& txn, const json& args) -> caf::expected<json> {
      auto n = arg<int64_t>(args, "n");
      auto version = model_store::active_version(txn, "mlp");
      if (!version)
        return version.error();
      outbox_call c;
      c.model = "mlp";
      c.model_version = *version;
      c.inputs = {make_spec("x", tensor_dtype::u8, {images, pixels})};
      c.result_procedure = "t.done";
      c.context = {{"n", n}};
      auto key = outbox::enqueue(ctx, txn, c, input_of(n));
      if (!key)
        return key.error();
      return json{{"version", *version}};
    },
    opts);
  procedure_options res;
  res.roles = {"*"};
  outbox::add_result_procedure(
    *procs, "t.done",
    [](call_context&, storage::transaction& txn, const json& args) -> caf::expected<json> {
      auto n = args.at("context").at("n").get<int64_t>();
      json row{{"n", n}};
      if (args.contains("error")) {
        row["error"] = args.at("error");
      } else {
        auto out = result_tensors(args.at("result"));
        if (!out)
          return out.error();
        auto views = out->views();
        if (!views)
          return views.error();
        for (const auto& v : *views)
          if (v.spec->name == "label")
            row["label"] = json::binary_t{std::vector<uint8_t>(v.data, v.data + v.size)};
        row["version"] = args.at("result").at("model_version");
      }
      auto prev = txn.get_row("results", std::to_string(n));
      if (!prev)
        return prev.error();
      if (*prev)
        row["applied_before"] = true; // never expected: results apply once
      if (auto err = txn.put_row("results", std::to_string(n), row))
        return err;
      return json{};
    },
    res);
  procs->add(
    "t.train",
    [](call_context& ctx, storage::transaction& txn, const json& args) -> caf::expected<json> {
      auto from = model_store::latest_version(txn, "mlp");
      if (!from)
        return from.error();
      auto count = arg<int64_t>(args, "count");
      std::string x(count * pixels, '\0'), y(count, '\0');
      std::mt19937 rng{99};
      // Two classes the MLP can learn: bright images are 1, dark ones 0.
      for (int64_t i = 0; i < count; ++i) {
        bool bright = rng() % 2;
        y[i] = static_cast<char>(bright);
        for (int64_t p = 0; p < pixels; ++p)
          x[i * pixels + p] = static_cast<char>(bright ? 128 + rng() % 128 : rng() % 128);
      }
      std::string config = json{
        {"epochs", arg<int64_t>(args, "epochs")},
        {"batch", 64},
        {"lr", 0.001},
        {"seed", 3}}.dump();
      tensor_pack pack;
      pack.add("x", tensor_dtype::u8, {count, pixels}, x.data());
      pack.add("y", tensor_dtype::u8, {count}, y.data());
      pack.add_strings("config", {config});
      outbox_call c;
      c.kind = piece_kind::train;
      c.model = "mlp";
      c.model_version = *from;
      c.inputs = pack.specs;
      c.result_procedure = "t.trained";
      c.context = {{"from", *from}};
      auto key = outbox::enqueue(ctx, txn, c,
                                 std::string_view{pack.bytes.data(), pack.bytes.size()});
      if (!key)
        return key.error();
      return json{{"from", *from}};
    },
    res);
  outbox::add_result_procedure(
    *procs, "t.trained",
    [](call_context& ctx, storage::transaction& txn, const json& args) -> caf::expected<json> {
      if (args.contains("error"))
        return make_error(errc::procedure_failed, args.at("error").dump());
      auto out = result_tensors(args.at("result"));
      if (!out)
        return out.error();
      auto views = out->views();
      if (!views)
        return views.error();
      for (const auto& v : *views)
        if (v.spec->name == "model") {
          auto from = args.at("context").at("from").get<uint32_t>();
          return model_store::store_version(ctx, txn, "mlp", from + 1,
                                            std::string_view{v.data, v.size},
                                            {{"trained_from", from}, {"call", args.at("call")}});
        }
      return make_error(errc::corrupt_data, "the train result has no 'model' tensor");
    },
    res);
  return procs;
}

/// A node in this process whose dispatcher reaches `compute_port`.
struct fixture {
  test::temp_dir dir;
  system_config cfg{2};
  std::unique_ptr<caf::actor_system> sys;
  std::unique_ptr<node> n;

  explicit fixture(uint16_t compute_port) {
    add_compute_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
    node_config nc;
    nc.data_dir = dir.path() + "/data";
    nc.partitions = 2;
    nc.durability = storage::durability::async;
    nc.compute = endpoint{"127.0.0.1", compute_port};
    n = test::must(node::start(*sys, nc, procedures()));
  }
  ~fixture() { n.reset(); }

  json call(const std::string& proc, json args) {
    auto r = n->call(proc, std::move(args), "admin", 60s);
    REQUIRE_MESSAGE(r, proc << ": " << test::why(r));
    return *r;
  }

  void put(const std::string& name, uint32_t version, const std::string& file) {
    size_t chunks = 0;
    for (size_t off = 0; off < file.size(); off += model_store::chunk_size, ++chunks)
      call("comb.model.put_chunk",
           {{"name", name},
            {"version", version},
            {"chunk_no", chunks},
            {"data", base64_encode(std::string_view{file}.substr(
                       off, std::min(model_store::chunk_size, file.size() - off)))}});
    call("comb.model.put", {{"name", name},
                            {"version", version},
                            {"chunk_count", chunks},
                            {"digest", model_digest(file.data(), file.size())}});
  }

  /// The version of `name` that is active, 0 when none.
  uint32_t active(const std::string& name) {
    for (const auto& row : call("comb.model.list", json::object()))
      if (row.value("name", "") == name && row.value("active", false))
        return row.value("version", 0u);
    return 0;
  }

  void activate(const std::string& name, uint32_t version, bool wait = true) {
    call("comb.model.activate", {{"name", name}, {"version", version}});
    if (wait)
      REQUIRE(
        test::wait_until([&] { return active(name) == version; }, 60s, "the version to be active"));
  }

  /// Result rows by n.
  std::map<int64_t, json> results() {
    std::map<int64_t, json> out;
    auto txn = n->db().begin();
    auto err = txn->scan("results", "", "", [&](std::string_view, std::string_view v) {
      auto row = json::from_msgpack(v, true, false);
      if (!row.is_discarded())
        out[row.value("n", int64_t{-1})] = row;
      return true;
    });
    REQUIRE_MESSAGE(!err, describe(err));
    return out;
  }
};

/// Labels (i32 bytes) of input_of(n) from `file` run in this process.
std::string direct_labels(const std::string& file, int64_t n) {
  auto kind = test::must(identify_model(file));
  auto lm = test::must(find_runner(kind)->load(file, kernels::cpu()));
  task_tensors t;
  auto in = input_of(n);
  t.tensors.add("x", tensor_dtype::u8, {images, pixels}, in.data());
  auto out = lm->infer({&t});
  REQUIRE(out.size() == 1);
  REQUIRE_MESSAGE(out[0], test::why(out[0]));
  for (const auto& v : test::must(out[0]->views()))
    if (v.spec->name == "label")
      return std::string{v.data, v.size};
  FAIL("no label tensor");
  return {};
}

std::string label_bytes(const json& row) {
  const auto& b = row.at("label").get_binary();
  return std::string(b.begin(), b.end());
}

} // namespace

TEST_SUITE("node.serving") {
  TEST_CASE("an MLP through the whole path gives what it gives in-process") {
    test::compute_child compute{{"--backend", "cpu"}};
    fixture f{compute.port()};
    auto v1 = test::must(make_mlp_file({784, 32, 10}, 1));
    f.put("mlp", 1, v1);
    f.activate("mlp", 1);
    for (int64_t n = 0; n < 12; ++n)
      f.call("t.infer", {{"n", n}});
    REQUIRE(test::wait_until([&] { return f.results().size() == 12; }, 60s, "12 results"));
    for (const auto& [n, row] : f.results()) {
      CHECK_MESSAGE(!row.contains("error"), row.dump());
      CHECK(row.value("version", 0) == 1);
      CHECK(label_bytes(row) == direct_labels(v1, n));
    }
  }

  TEST_CASE("activating version 2 while calls run: none fails, each names its version") {
    test::compute_child compute{{"--backend", "cpu", "--batch", "mlp=4:2"}};
    fixture f{compute.port()};
    auto v1 = test::must(make_mlp_file({784, 32, 10}, 1));
    auto v2 = test::must(make_mlp_file({784, 32, 10}, 2));
    f.put("mlp", 1, v1);
    f.put("mlp", 2, v2);
    f.activate("mlp", 1);
    constexpr int64_t calls = 120;
    std::string caller_error;
    std::thread caller{[&] {
      for (int64_t n = 0; n < calls; ++n) {
        auto r = f.n->call("t.infer", {{"n", n}}, "admin", 60s);
        if (!r) {
          caller_error = "t.infer " + std::to_string(n) + ": " + describe(r.error());
          return;
        }
      }
    }};
    REQUIRE(test::wait_until([&] { return f.results().size() >= 30; }, 60s, "30 results"));
    f.activate("mlp", 2, false);
    caller.join();
    REQUIRE_MESSAGE(caller_error.empty(), caller_error);
    REQUIRE(test::wait_until([&] { return f.results().size() == calls; }, 90s, "every result"));
    REQUIRE(test::wait_until([&] { return f.active("mlp") == 2; }, 60s, "version 2 to be active"));
    std::map<int, int> by_version;
    for (const auto& [n, row] : f.results()) {
      REQUIRE_MESSAGE(!row.contains("error"), row.dump());
      CHECK_FALSE(row.contains("applied_before"));
      auto v = row.value("version", 0);
      ++by_version[v];
      REQUIRE((v == 1 || v == 2));
      CHECK(label_bytes(row) == direct_labels(v == 1 ? v1 : v2, n));
    }
    CHECK(by_version[1] > 0);
    CHECK(by_version[1] + by_version[2] == calls);
    // Calls made now run on version 2.
    f.call("t.infer", {{"n", calls}});
    REQUIRE(
      test::wait_until([&] { return f.results().size() == calls + 1; }, 60s, "the last result"));
    CHECK(f.results().at(calls).value("version", 0) == 2);
  }

  TEST_CASE("kill -9 of the compute process mid-batch: every result is applied once") {
    // Batches of 8 that wait up to 300 ms, so that tasks are pooled when the process dies.
    test::compute_child compute{{"--backend", "cpu", "--batch", "mlp=8:300"}};
    fixture f{compute.port()};
    auto v1 = test::must(make_mlp_file({784, 32, 10}, 1));
    f.put("mlp", 1, v1);
    f.activate("mlp", 1);
    constexpr int64_t calls = 60;
    for (int64_t n = 0; n < calls; ++n)
      f.call("t.infer", {{"n", n}});
    REQUIRE(test::wait_until([&] { return f.results().size() >= 4; }, 60s, "4 results"));
    compute.kill();
    auto before = f.results().size();
    std::this_thread::sleep_for(300ms);
    compute.start();
    REQUIRE_MESSAGE(test::wait_until([&] { return f.results().size() == calls; }, 120s,
                                     "every result"),
                    f.results().size() << " of " << calls << " results");
    MESSAGE(before << " of " << calls << " results were applied before the kill");
    for (const auto& [n, row] : f.results()) {
      REQUIRE_MESSAGE(!row.contains("error"), row.dump());
      CHECK_FALSE(row.contains("applied_before"));
      CHECK(row.value("version", 0) == 1);
      CHECK(label_bytes(row) == direct_labels(v1, n));
    }
  }

  TEST_CASE("training killed with its compute process is run again and stored once") {
    test::compute_child compute{{"--backend", "cpu"}};
    fixture f{compute.port()};
    f.put("mlp", 1, test::must(make_mlp_file({784, 256, 2}, 1)));
    f.activate("mlp", 1);
    auto stored = [&] {
      for (const auto& row : f.call("comb.model.list", json::object()))
        if (row.value("name", "") == "mlp" && row.value("version", 0) == 2)
          return true;
      return false;
    };
    // Long enough to be killed in the middle (several seconds on 2 cores, with the AVX-512
    // dense layers too).
    auto t0 = std::chrono::steady_clock::now();
    f.call("t.train", {{"count", 8000}, {"epochs", 40}});
    std::this_thread::sleep_for(700ms);
    compute.kill();
    // The kill must have hit the training, or this test tests nothing.
    REQUIRE_FALSE(stored());
    std::this_thread::sleep_for(300ms);
    compute.start();
    REQUIRE(test::wait_until(stored, 180s, "the trained version"));
    MESSAGE("trained version stored "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
            << " s after the call (killed once after 0.7 s)");
    int versions = 0;
    for (const auto& row : f.call("comb.model.list", json::object()))
      if (row.value("name", "") == "mlp") {
        ++versions;
        if (row.value("version", 0) == 2) {
          CHECK(row.value("trained_from", 0) == 1);
          CHECK(row.contains("call"));
        }
      }
    CHECK(versions == 2);
  }
}
