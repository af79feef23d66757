// Tests for the bank app (apps/bank): amounts are whole numbers in range, never rounded or
// wrapped, and no arithmetic overflows into a committed balance.
#include "apps/bank/bank.hpp"

#include "base/errc.hpp"
#include "node/node.hpp"
#include "runtime/system_config.hpp"
#include "storage/transaction.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <cstdint>

using namespace comb;
using nlohmann::json;

namespace {

struct bank_fixture {
  test::temp_dir dir;
  runtime::system_config cfg{2};
  caf::actor_system sys{cfg};
  std::unique_ptr<runtime::node> n;

  bank_fixture() {
    auto procs = std::make_shared<runtime::procedure_registry>();
    apps::bank::register_bank(*procs);
    // Test helpers: write and read an account's whole row.
    procs->add(
      "test.put_account",
      [](runtime::call_context&, storage::transaction& txn, const json& args)
        -> caf::expected<json> {
        if (auto err = txn.put_row("bank.accounts", args["account"].get<std::string>(),
                                   args["row"]))
          return err;
        return json::object();
      },
      {.roles = {"admin"}, .partition_by = "account"});
    procs->add(
      "test.account_row",
      [](runtime::call_context&, storage::transaction& txn, const json& args)
        -> caf::expected<json> {
        auto row = txn.get_row("bank.accounts", args["account"].get<std::string>());
        if (!row)
          return row.error();
        return *row ? **row : json{};
      },
      {.roles = {"admin"}, .partition_by = "account"});
    runtime::node_config c;
    c.data_dir = dir.path();
    c.durability = storage::durability::async;
    c.partitions = 2;
    n = test::must(runtime::node::start(sys, c, procs));
  }

  caf::expected<json> call(const std::string& proc, json args, const std::string& role) {
    return n->call(proc, std::move(args), role);
  }

  std::string error_of(const std::string& proc, json args, const std::string& role) {
    auto r = call(proc, std::move(args), role);
    return r ? std::string{"ok"} : describe(r.error());
  }
};

} // namespace

TEST_SUITE("apps.bank") {
  TEST_CASE("a transfer into a balance at INT64_MAX is refused, nothing wraps") {
    bank_fixture f;
    REQUIRE(f.call("bank.open", {{"account", "rich"}, {"balance", INT64_MAX}}, "admin"));
    REQUIRE(f.call("bank.open", {{"account", "poor"}, {"balance", 10}}, "admin"));
    auto err = f.error_of("bank.transfer",
                          {{"id", "t1"}, {"from", "poor"}, {"to", "rich"}, {"amount", 1}},
                          "teller");
    CHECK(err.find("would exceed") != std::string::npos);
    auto rich = test::must(f.call("bank.balance", {{"account", "rich"}}, "auditor"));
    CHECK(rich["balance"].get<int64_t>() == INT64_MAX);
    auto poor = test::must(f.call("bank.balance", {{"account", "poor"}}, "auditor"));
    CHECK(poor["balance"].get<int64_t>() == 10);
    // The total of two accounts whose sum does not fit is an error, not a negative number.
    auto total = f.call("bank.total", json::object(), "auditor");
    REQUIRE(!total);
    CHECK(is(total.error(), errc::too_large));
  }

  TEST_CASE("a transfer writes the new balances into the rows it read, other fields kept") {
    bank_fixture f;
    REQUIRE(f.call("test.put_account",
                   {{"account", "ann"}, {"row", {{"balance", 100}, {"owner", "Ann"}}}}, "admin"));
    REQUIRE(f.call("bank.open", {{"account", "bob"}, {"balance", 5}}, "admin"));
    auto r = test::must(f.call(
      "bank.transfer", {{"id", "t1"}, {"from", "ann"}, {"to", "bob"}, {"amount", 30}}, "teller"));
    CHECK(r == json{{"id", "t1"}, {"from_balance", 70}, {"to_balance", 35}});
    CHECK(test::must(f.call("test.account_row", {{"account", "ann"}}, "admin"))
          == json{{"balance", 70}, {"owner", "Ann"}});
    CHECK(test::must(f.call("test.account_row", {{"account", "bob"}}, "admin"))
          == json{{"balance", 35}});
    auto back = test::must(f.call(
      "bank.transfer", {{"id", "t2"}, {"from", "bob"}, {"to", "ann"}, {"amount", 35}}, "teller"));
    CHECK(back == json{{"id", "t2"}, {"from_balance", 0}, {"to_balance", 105}});
    CHECK(test::must(f.call("test.account_row", {{"account", "ann"}}, "admin"))
          == json{{"balance", 105}, {"owner", "Ann"}});
  }

  TEST_CASE("amounts must be whole numbers in range: 1.5, 1e30, 2^64-1, -1 and text are refused") {
    bank_fixture f;
    REQUIRE(f.call("bank.open", {{"account", "a"}, {"balance", 100}}, "admin"));
    REQUIRE(f.call("bank.open", {{"account", "b"}, {"balance", 100}}, "admin"));
    for (auto bad : {json(1.5), json::parse("1e30"), json(UINT64_MAX), json(-1), json(0), json("5"),
                     json(nullptr)}) {
      CAPTURE(bad.dump());
      auto err = f.error_of(
        "bank.transfer", {{"id", "t-" + bad.dump()}, {"from", "a"}, {"to", "b"}, {"amount", bad}},
        "teller");
      CHECK(err.find("invalid_argument") != std::string::npos);
      CHECK(err.find("'amount'") != std::string::npos);
    }
    for (auto bad : {json(1.5), json::parse("1e30"), json(-3)}) {
      CAPTURE(bad.dump());
      auto err = f.error_of("bank.open", {{"account", "c"}, {"balance", bad}}, "admin");
      CHECK(err.find("'balance'") != std::string::npos);
    }
    CHECK(f.error_of("bank.open", {{"account", "c"}}, "admin").find("missing")
          != std::string::npos);
    // Nothing of the refused calls committed.
    auto total = test::must(f.call("bank.total", json::object(), "auditor"));
    CHECK(total["total"] == 200);
    CHECK(total["accounts"] == 2);
    CHECK(total["transfers"] == 0);
    // A good transfer still works.
    REQUIRE(
      f.call("bank.transfer", {{"id", "ok"}, {"from", "a"}, {"to", "b"}, {"amount", 7}}, "teller"));
    auto b = test::must(f.call("bank.balance", {{"account", "b"}}, "auditor"));
    CHECK(b["balance"] == 107);
  }
}
