// Tests for comb::runtime::node with state actors: the bank under concurrent load, roles,
// bad input through the gateway, rollback on error and exception, and a busy port.
#include "node/node.hpp"

#include "apps/bank/bank.hpp"
#include "node/client.hpp"
#include "base/errc.hpp"
#include "node/load_driver.hpp"
#include "runtime/system_config.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace comb;
using nlohmann::json;

namespace {

std::shared_ptr<runtime::procedure_registry> bank_procs() {
  auto procs = std::make_shared<runtime::procedure_registry>();
  apps::bank::register_bank(*procs);
  procs->add_table("test.t");
  procs->add("test.write_then_fail",
             [](runtime::call_context&, storage::transaction& txn,
                const json& args) -> caf::expected<json> {
               if (auto err = txn.put_row("test.t", "a", {{"v", 1}}))
                 return err;
               if (auto err = txn.put_row("bank.accounts", "acct-0", {{"balance", 0}}))
                 return err;
               if (args.value("throw", false))
                 throw std::runtime_error("boom");
               return make_error(errc::procedure_failed, "failing on purpose");
             },
             {.roles = {"*"}});
  procs->add("test.slow",
             [](runtime::call_context&, storage::transaction&,
                const json& args) -> caf::expected<json> {
               std::this_thread::sleep_for(std::chrono::milliseconds(args.value("ms", 0)));
               return json{{"slept", true}};
             },
             {.roles = {"*"}});
  return procs;
}

runtime::node_config config(const std::string& dir, storage::durability d) {
  runtime::node_config c;
  c.data_dir = dir;
  c.durability = d;
  c.partitions = 4;
  return c;
}

} // namespace

TEST_SUITE("node.node") {
  TEST_CASE("10,000 concurrent transfers: total conserved, none lost, none applied twice") {
    for (auto mode : {storage::durability::sync, storage::durability::async}) {
      CAPTURE(storage::to_string(mode));
      test::temp_dir dir;
      runtime::system_config cfg{2};
      caf::actor_system sys{cfg};
      auto n = test::must(runtime::node::start(sys, config(dir.path(), mode), bank_procs()));
      constexpr int accounts = 50;
      constexpr int64_t initial = 1'000'000;
      for (int i = 0; i < accounts; ++i)
        REQUIRE(n->call("bank.open", {{"account", "a" + std::to_string(i)}, {"balance", initial}},
                        "admin"));
      struct transfer {
        int from, to;
        int64_t amount;
      };
      constexpr uint64_t total = 10'000;
      std::vector<transfer> plan;
      uint64_t seed = 42;
      for (uint64_t i = 0; i < total; ++i) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int from = static_cast<int>((seed >> 33) % accounts);
        int to = static_cast<int>((from + 1 + (seed >> 13) % (accounts - 1)) % accounts);
        plan.push_back({from, to, static_cast<int64_t>(1 + (seed >> 40) % 100)});
      }
      std::mutex mtx;
      std::set<uint64_t> acked;
      auto make = [&](uint64_t i) {
        runtime::invocation inv;
        inv.procedure = "bank.transfer";
        inv.role = "teller";
        inv.args = {{"id", "t" + std::to_string(i)},
                    {"from", "a" + std::to_string(plan[i].from)},
                    {"to", "a" + std::to_string(plan[i].to)},
                    {"amount", plan[i].amount}};
        return inv;
      };
      auto res = runtime::drive(sys, n->route(), /*clients=*/64, total, make,
                                [&](uint64_t i, const caf::expected<json>& r) {
                                  if (r) {
                                    std::lock_guard guard{mtx};
                                    acked.insert(i);
                                  }
                                });
      for (auto& e : res.errors)
        MESSAGE("error: " << e);
      CHECK(res.ok == total);
      CHECK(acked.size() == total);
      auto sum = test::must(n->call("bank.total", json::object(), "auditor"));
      CHECK(sum["total"] == accounts * initial);
      CHECK(sum["transfers"] == total);
      // Every account's balance is exactly what the acknowledged transfers imply.
      std::map<int, int64_t> expect;
      for (auto i : acked) {
        expect[plan[i].from] -= plan[i].amount;
        expect[plan[i].to] += plan[i].amount;
      }
      for (int a = 0; a < accounts; ++a) {
        auto b = test::must(n->call("bank.balance", {{"account", "a" + std::to_string(a)}}, "x"));
        CHECK(b["balance"] == initial + expect[a]);
      }
      // Re-sending acknowledged transfers is refused and changes nothing.
      auto again = runtime::drive(sys, n->route(), 8, 100, make);
      CHECK(again.ok == 0);
      CHECK(again.failed == 100);
      REQUIRE(!again.errors.empty());
      CHECK(again.errors[0].find("already_exists") != std::string::npos);
      auto sum2 = test::must(n->call("bank.total", json::object(), "auditor"));
      CHECK(sum2 == sum);
    }
  }

  TEST_CASE("roles, unknown procedures and bad arguments are refused; nothing runs") {
    test::temp_dir dir;
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto n = test::must(
      runtime::node::start(sys, config(dir.path(), storage::durability::sync), bank_procs()));
    REQUIRE(n->call("bank.open", {{"account", "x"}, {"balance", 10}}, "admin"));
    auto r = n->call("bank.open", {{"account", "y"}, {"balance", 10}}, "teller");
    REQUIRE(!r);
    CHECK(is(r.error(), errc::permission_denied));
    CHECK(n->db().count("bank.accounts").value() == 1);
    CHECK(is(n->call("bank.nope", json::object(), "admin").error(), errc::unknown_procedure));
    auto bad = n->call("bank.open", {{"account", "z"}, {"balance", "lots"}}, "admin");
    REQUIRE(!bad);
    CHECK(is(bad.error(), errc::invalid_argument));
    CHECK(describe(bad.error()).find("'balance'") != std::string::npos);
    CHECK(is(n->call("bank.open", {{"balance", 1}}, "admin").error(), errc::invalid_argument));
    CHECK(n->db().count("bank.accounts").value() == 1);
  }

  TEST_CASE("an error or exception rolls back every write, across partitions") {
    test::temp_dir dir;
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto n = test::must(
      runtime::node::start(sys, config(dir.path(), storage::durability::sync), bank_procs()));
    REQUIRE(n->call("bank.open", {{"account", "acct-0"}, {"balance", 5}}, "admin"));
    auto r1 = n->call("test.write_then_fail", json::object(), "anyone");
    CHECK(is(r1.error(), errc::procedure_failed));
    auto r2 = n->call("test.write_then_fail", {{"throw", true}}, "anyone");
    CHECK(is(r2.error(), errc::procedure_failed));
    CHECK(describe(r2.error()).find("boom") != std::string::npos);
    CHECK(n->db().count("test.t").value() == 0);
    auto b = test::must(n->call("bank.balance", {{"account", "acct-0"}}, "x"));
    CHECK(b["balance"] == 5);
  }

  TEST_CASE("remote calls through the gateway; bad input gets clear errors, node keeps serving") {
    test::temp_dir dir;
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto nc = config(dir.path(), storage::durability::async);
    nc.listen = true;
    nc.port = 0;
    auto n = test::must(runtime::node::start(sys, nc, bank_procs()));
    REQUIRE(n->port() != 0);
    auto c = test::must(runtime::client::connect(sys, {"127.0.0.1", n->port()}));
    CHECK(c.call("bank.open", R"({"account":"r","balance":7})", "admin"));
    CHECK(is(c.call("bank.open", "{not json", "admin").error(), errc::invalid_argument));
    CHECK(is(c.call("bank.open", "[1,2]", "admin").error(), errc::invalid_argument));
    CHECK(is(c.call("bank.zzz", "{}", "admin").error(), errc::unknown_procedure));
    std::string huge = R"({"account":"big","balance":1,"pad":")" + std::string(2u << 20, 'x')
                       + "\"}";
    auto big = c.call("bank.open", huge, "admin");
    REQUIRE(!big);
    CHECK(is(big.error(), errc::too_large));
    auto bal = test::must(c.call("bank.balance", R"({"account":"r"})", "guest"));
    CHECK(bal["balance"] == 7);
    // A reply that does not come in time is named, with what it means for the call.
    auto slow = c.call("test.slow", R"({"ms":1500})", "anyone", std::chrono::milliseconds{300});
    REQUIRE(!slow);
    CHECK(is(slow.error(), errc::timeout));
    CHECK(describe(slow.error()).find("within 300 ms for test.slow") != std::string::npos);
    CHECK(describe(slow.error()).find("may or may not have committed") != std::string::npos);
    auto info = json::parse(test::must(c.info()));
    CHECK(info["partitions"] == 4);

    // A second node on the same port is refused with a clear error.
    test::temp_dir dir2;
    auto nc2 = config(dir2.path(), storage::durability::async);
    nc2.listen = true;
    nc2.port = n->port();
    auto n2 = runtime::node::start(sys, nc2, bank_procs());
    REQUIRE(!n2);
    CHECK(is(n2.error(), errc::network_error));
    CHECK(describe(n2.error()).find(std::to_string(n->port())) != std::string::npos);
    // The first node still serves.
    CHECK(c.call("bank.balance", R"({"account":"r"})", "guest"));
  }

  TEST_CASE("a node refuses a data folder that is not Comb's") {
    test::temp_dir dir;
    std::ofstream{dir.path() + "/precious.db"} << "data";
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto n = runtime::node::start(sys, config(dir.path(), storage::durability::sync), bank_procs());
    REQUIRE(!n);
    CHECK(is(n.error(), errc::not_comb_folder));
  }

} // TEST_SUITE
