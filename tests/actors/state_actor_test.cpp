// Tests for the state actor's batches (call_atom with several invocations): each invocation
// gets its own outcome, in order, and its own execution id; each sees the writes of those
// before it; one that fails leaves the others' effects as they would be alone and none of its
// own; with a provenance hook each invocation has its own record; in sync mode the batch is
// answered once its commits are durable (through the group committer).
#include "actors/group_committer.hpp"
#include "actors/state_actor.hpp"

#include "base/errc.hpp"
#include "runtime/atoms.hpp"
#include "runtime/procedure_registry.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <set>

using namespace comb;
using nlohmann::json;

namespace {

// "t.incr" {"name"}: adds 1 to counter `name` and returns {"value", "execution"}; "t.fail"
// {"name"}: adds 1 to counter `name`, then fails; "t.throw": throws; "t.read" (read-only)
// {"name"}: the counter.
std::shared_ptr<runtime::procedure_registry> procedures() {
  auto procs = std::make_shared<runtime::procedure_registry>();
  procs->add_table("counters");
  runtime::procedure_options opts;
  opts.roles = {"*"};
  auto incr = [](runtime::call_context& ctx, storage::transaction& txn,
                 const json& args) -> caf::expected<json> {
    auto name = runtime::arg<std::string>(args, "name");
    auto row = txn.get_row_for_update("counters", name);
    if (!row)
      return row.error();
    int64_t v = *row ? (**row).at("v").get<int64_t>() : 0;
    if (auto err = txn.put_row("counters", name, json{{"v", v + 1}}))
      return err;
    return json{{"value", v + 1}, {"execution", ctx.execution_id}};
  };
  procs->add("t.incr", incr, opts);
  procs->add(
    "t.fail",
    [incr](runtime::call_context& ctx, storage::transaction& txn,
           const json& args) -> caf::expected<json> {
      if (auto r = incr(ctx, txn, args); !r)
        return r.error();
      return make_error(errc::invalid_argument, "t.fail fails");
    },
    opts);
  procs->add(
    "t.throw",
    [](runtime::call_context&, storage::transaction&, const json&) -> caf::expected<json> {
      throw std::runtime_error{"t.throw throws"};
    },
    opts);
  auto ro = opts;
  ro.read_only = true;
  procs->add(
    "t.read",
    [](runtime::call_context&, storage::transaction& txn, const json& args) -> caf::expected<json> {
      auto row = txn.get_row("counters", runtime::arg<std::string>(args, "name"));
      if (!row)
        return row.error();
      return json{{"value", *row ? (**row).at("v").get<int64_t>() : 0}};
    },
    ro);
  return procs;
}

runtime::invocation call(std::string procedure, std::string name) {
  runtime::invocation inv;
  inv.procedure = std::move(procedure);
  inv.args = json{{"name", std::move(name)}};
  inv.role = "admin";
  inv.sender = "test";
  return inv;
}

// Counts what a hook hears: one before_commit per committed invocation (each with its own
// execution id), one on_failed per failed one.
struct counting_hook : runtime::provenance_hook {
  std::mutex mtx;
  std::vector<uint64_t> committed;
  std::vector<std::string> failed;
  int open = 0; // before_commit without its after_commit yet
  void before_commit(storage::transaction&, runtime::invocation_record& rec) override {
    std::lock_guard g{mtx};
    CHECK(open == 0);
    ++open;
    committed.push_back(rec.execution_id);
  }
  void after_commit(const runtime::invocation_record&, bool ok) override {
    std::lock_guard g{mtx};
    CHECK(ok);
    --open;
  }
  void on_failed(const runtime::invocation_record& rec) override {
    std::lock_guard g{mtx};
    failed.push_back(rec.procedure);
  }
  void on_message(const runtime::message_record&) override {}
};

struct fixture {
  test::temp_dir dir;
  std::unique_ptr<storage::database> db;
  runtime::system_config cfg{2};
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  actors::state_actor actor;
  actors::committer_actor committer;

  explicit fixture(std::shared_ptr<runtime::provenance_hook> hook = nullptr,
                   storage::durability mode = storage::durability::async) {
    storage::options opts;
    opts.mode = mode;
    db = test::must(storage::database::open(dir.path(), opts));
    REQUIRE(!db->create_table("counters"));
    actors::state_env env;
    env.db = db.get();
    env.procs = procedures();
    env.hook = std::move(hook);
    if (mode == storage::durability::sync) {
      committer = sys.spawn<caf::detached>(actors::group_committer, db.get());
      env.committer = committer;
    }
    actor = sys.spawn(actors::state_actor_impl, env, 0u);
  }
  ~fixture() {
    self->send_exit(actor, caf::exit_reason::user_shutdown);
    if (committer)
      self->send_exit(committer, caf::exit_reason::user_shutdown);
  }

  std::vector<runtime::invocation_outcome> run(std::vector<runtime::invocation> batch) {
    std::vector<runtime::invocation_outcome> out;
    self->request(actor, std::chrono::seconds{30}, call_atom::value, std::move(batch))
      .receive([&](std::vector<runtime::invocation_outcome>& o) { out = std::move(o); },
               [&](caf::error& e) { FAIL("batch failed: " << to_string(e)); });
    return out;
  }

  int64_t counter(const std::string& name) {
    auto txn = db->begin();
    auto row = test::must(txn->get_row("counters", name));
    return row ? row->at("v").get<int64_t>() : 0;
  }
};

} // namespace

TEST_SUITE("actors.state_actor") {
  TEST_CASE("a batch: one outcome per invocation, in order, each its own execution, each "
            "seeing the writes before it") {
    fixture f;
    auto out = f.run({call("t.incr", "a"), call("t.incr", "a"), call("t.incr", "b"),
                      call("t.read", "a"), call("t.incr", "a")});
    REQUIRE(out.size() == 5);
    for (auto& o : out)
      CHECK(!o.error);
    CHECK(out[0].result["value"] == 1);
    CHECK(out[1].result["value"] == 2);
    CHECK(out[2].result["value"] == 1);
    CHECK(out[3].result["value"] == 2);
    CHECK(out[4].result["value"] == 3);
    std::set<uint64_t> ids;
    for (size_t i : {0, 1, 2, 4})
      ids.insert(out[i].result["execution"].get<uint64_t>());
    CHECK(ids.size() == 4);
    CHECK(f.counter("a") == 3);
    CHECK(f.counter("b") == 1);
    // A batch of one, and an empty batch.
    out = f.run({call("t.incr", "b")});
    REQUIRE(out.size() == 1);
    CHECK(out[0].result["value"] == 2);
    CHECK(f.run({}).empty());
  }

  TEST_CASE("an invocation that fails, throws or names no procedure in a batch: its error, "
            "none of its writes, the others applied as they would be alone") {
    fixture f;
    auto nothing = call("t.none", "a");
    auto out = f.run({call("t.incr", "a"), call("t.fail", "a"), call("t.incr", "a"),
                      call("t.throw", "a"), nothing, call("t.incr", "c")});
    REQUIRE(out.size() == 6);
    CHECK(!out[0].error);
    CHECK(out[0].result["value"] == 1);
    CHECK(is(out[1].error, errc::invalid_argument));
    CHECK(!out[2].error);
    CHECK(out[2].result["value"] == 2); // t.fail's increment was not kept
    CHECK(is(out[3].error, errc::procedure_failed));
    CHECK(is(out[4].error, errc::unknown_procedure));
    CHECK(!out[5].error);
    CHECK(f.counter("a") == 2);
    CHECK(f.counter("c") == 1);
  }

  TEST_CASE("with a provenance hook each invocation of a batch has its own record") {
    auto hook = std::make_shared<counting_hook>();
    fixture f{hook};
    auto out = f.run({call("t.incr", "a"), call("t.fail", "a"), call("t.incr", "a")});
    REQUIRE(out.size() == 3);
    CHECK(out[2].result["value"] == 2);
    std::lock_guard g{hook->mtx};
    REQUIRE(hook->committed.size() == 2);
    CHECK(hook->committed[0] == out[0].result["execution"].get<uint64_t>());
    CHECK(hook->committed[1] == out[2].result["execution"].get<uint64_t>());
    CHECK(hook->failed == std::vector<std::string>{"t.fail"});
    CHECK(hook->open == 0);
  }

  TEST_CASE("in sync mode a batch that wrote is answered through the group committer") {
    fixture f{nullptr, storage::durability::sync};
    auto out = f.run({call("t.incr", "a"), call("t.incr", "a"), call("t.read", "a")});
    REQUIRE(out.size() == 3);
    CHECK(out[1].result["value"] == 2);
    CHECK(out[2].result["value"] == 2);
    CHECK(f.counter("a") == 2);
    // Read-only alone: answered without the committer.
    out = f.run({call("t.read", "a"), call("t.read", "b")});
    REQUIRE(out.size() == 2);
    CHECK(out[0].result["value"] == 2);
    CHECK(out[1].result["value"] == 0);
  }
}

TEST_SUITE("actors.state_actor") {
  TEST_CASE("release_json empties any value, however deeply nested, without deep recursion") {
    // The state actor releases a call's arguments with it once the call ran.
    nlohmann::json args{{"id", "t1"}, {"from", "acct-1"}, {"n", 3}, {"list", {1, "x", {{"k", 2}}}}};
    runtime::release_json(args);
    CHECK(args.is_null());
    // Nested far past what a recursion of one frame per level could take on a thread's stack.
    nlohmann::json deep = nlohmann::json::array();
    auto* at = &deep;
    for (int i = 0; i < 200000; ++i) {
      auto next = i % 2 ? nlohmann::json::array() : nlohmann::json::object();
      at = at->is_array() ? &at->emplace_back(std::move(next)) : &((*at)["k"] = std::move(next));
    }
    nlohmann::json holder{{"deep", std::move(deep)}};
    runtime::release_json(holder);
    CHECK(holder.is_null());
    nlohmann::json scalar = "text";
    runtime::release_json(scalar);
    CHECK(scalar.is_null());
  }
}
