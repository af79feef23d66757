// The model store on loopback: `comb model put|list|get|activate` child processes against a
// node (in this process, gateway on a TCP port) whose outbox dispatcher feeds a real
// `comb compute` process. Checks chunked storage with digests, read-back byte for byte,
// activation loading the chunks into compute, provenance (every result names the version
// that produced it) and that switching versions fails no call in flight.
#include "actors/outbox_dispatcher.hpp"
#include "runtime/pieces/builtin_tasks.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/model_store.hpp"
#include "node/node.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/system_config.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <doctest/doctest.h>

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
  procedure_options r;
  r.roles = {"admin"};
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

} // namespace

TEST_SUITE("runtime.pieces.model_store") {
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

} // TEST_SUITE
