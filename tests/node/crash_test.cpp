// Crash test: a `comb node` child process in sync mode takes concurrent transfers and is killed
// with SIGKILL mid-load; after a restart every acknowledged transfer is present and the total
// is conserved.
#include "node/client.hpp"
#include "base/errc.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"
#include "storage/transaction.hpp"
#include "tests/client_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace comb;
using nlohmann::json;

namespace {

std::unique_ptr<test::child_process> start_node(const std::string& data, int port,
                                                const std::string& log) {
  return std::make_unique<test::child_process>(
    std::vector<std::string>{test::comb_binary(), "node", "--data", data, "--listen",
                             "127.0.0.1:" + std::to_string(port), "--durability", "sync"},
    log);
}

} // namespace

TEST_SUITE("node.crash") {
  TEST_CASE("SIGKILL mid-load loses no acknowledged transfer and conserves the total") {
    test::temp_dir dir;
    auto data = dir.path() + "/node";
    constexpr int accounts = 20;
    constexpr int64_t initial = 1'000'000;
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    int port = test::free_port();
    auto node = start_node(data, port, dir.path() + "/node1.log");
    auto c = test::connect_retry(sys, port);
    REQUIRE_MESSAGE(c, test::why(c));
    for (int i = 0; i < accounts; ++i)
      REQUIRE(c->call("bank.open",
                      json{{"account", "a" + std::to_string(i)}, {"balance", initial}}.dump(),
                      "admin"));

    constexpr size_t kill_after = 2000; // acknowledged transfers
    std::mutex mtx;
    std::condition_variable acked_cv;
    std::vector<std::string> acked;
    std::atomic<bool> stop{false};
    std::atomic<int> sent{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 8; ++t)
      clients.emplace_back([&, t] {
        for (int i = 0; !stop; ++i) {
          int from = (t * 31 + i * 7) % accounts, to = (from + 1 + i % (accounts - 1)) % accounts;
          auto id = "t" + std::to_string(t) + "-" + std::to_string(i);
          ++sent;
          auto r = c->call("bank.transfer",
                           json{{"id", id},
                                {"from", "a" + std::to_string(from)},
                                {"to", "a" + std::to_string(to)},
                                {"amount", 1 + i % 50}}
                             .dump(),
                           "teller", std::chrono::seconds{5});
          if (!r)
            return; // the node is gone
          std::lock_guard guard{mtx};
          acked.push_back(id);
          if (acked.size() == kill_after)
            acked_cv.notify_all();
        }
      });
    // Let the load run, then kill the node in the middle of it: once enough transfers are
    // acknowledged, or after 20 s at most (a slow machine still gets its kill mid-load).
    {
      std::unique_lock lock{mtx};
      acked_cv.wait_for(lock, std::chrono::seconds{20}, [&] { return acked.size() >= kill_after; });
    }
    node->kill(SIGKILL);
    stop = true;
    for (auto& th : clients)
      th.join();
    MESSAGE("acknowledged before SIGKILL: " << acked.size() << " of " << sent.load() << " sent");
    REQUIRE(acked.size() > 100);

    // Restart on the same data folder and check through the node.
    int port2 = test::free_port();
    auto node2 = start_node(data, port2, dir.path() + "/node2.log");
    auto c2 = test::connect_retry(sys, port2);
    REQUIRE_MESSAGE(c2, test::why(c2));
    auto total = c2->call("bank.total", "{}", "auditor");
    REQUIRE_MESSAGE(total, test::why(total));
    CHECK((*total)["total"] == accounts * initial);
    CHECK((*total)["transfers"].get<size_t>() >= acked.size());
    // The node keeps serving after recovery.
    CHECK(
      c2->call("bank.transfer", R"({"id":"after","from":"a0","to":"a1","amount":1})", "teller"));
    node2->kill(SIGTERM);

    // Every acknowledged transfer is in the data folder.
    auto db = test::must(storage::database::open(data));
    auto txn = db->begin();
    size_t missing = 0;
    for (auto& id : acked) {
      auto row = txn->get("bank.transfers", id);
      REQUIRE(row);
      if (!*row)
        ++missing;
    }
    CHECK(missing == 0);
  }

} // TEST_SUITE
