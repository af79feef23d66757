// A bank workload on a three-node cluster, each node a `comb node --config F --name N` in a
// network namespace of its own (tests/support/netns.hpp), clients on a fourth host connected
// to different nodes, and faults as an operator meets them:
// - kill -9 a state node under load and restart it: every acknowledged transfer is there,
//   money is conserved over the nodes, and `comb cluster verify` replays each node's log to
//   its data folder's digest; the nodes' logs meet in one SQL store, each under its name;
// - cut a state node's host off the network and heal it: calls for its partitions fail with
//   an error within their timeout (no hang) while the other node serves its own, and after
//   the heal calls succeed again without a restart.
// Skipped, visibly, where namespaces cannot be made (not root, no `ip netns`).
#include "apps/bank/bank.hpp"
#include "base/errc.hpp"
#include "node/client.hpp"
#include "runtime/procedure_registry.hpp"
#include "runtime/system_config.hpp"
#include "storage/sql_store.hpp"
#include "tests/support/netns_cluster.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <csignal>
#include <sys/wait.h>

using namespace comb;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr uint32_t partitions = 8;
constexpr int accounts_per_node = 6;
constexpr int64_t opening = 1000;

// Three hosts run n1, n2 (state: partitions 0-3 and 4-7) and n3 (compute); the fourth is
// the clients'. Both state nodes spool into one store.
struct cluster : test::netns_cluster {
  std::string store = dir.path() + "/cluster.sqlite";

  void write_config() const {
    // A forward timeout of its own (5 s by default), so that the cut test sees it at work.
    netns_cluster::write_config("forward_timeout = 3\n", "roles = [\"state\", \"spooler\"]\n");
  }
  void start(int i) { netns_cluster::start(i, {"--spool", store}); }
};

caf::expected<runtime::client> connect(caf::actor_system& sys, const cluster& c, int i) {
  return test::connect_node(sys, c, i);
}

// Accounts named so that each node holds accounts_per_node of them: the node that runs an
// account's partition, by the same hash the router uses.
std::map<std::string, int> make_accounts() {
  runtime::procedure_registry procs;
  apps::bank::register_bank(procs);
  auto* def = procs.find("bank.open");
  REQUIRE(def != nullptr);
  std::map<std::string, int> owner;
  int count[2] = {0, 0};
  for (int k = 0; count[0] < accounts_per_node || count[1] < accounts_per_node; ++k) {
    auto name = "acct" + std::to_string(k);
    auto p = procs.partition_of(*def, json{{"account", name}}, partitions);
    REQUIRE(p);
    int node = *p < 4 ? 0 : 1;
    if (count[node] < accounts_per_node) {
      owner[name] = node;
      ++count[node];
    }
  }
  return owner;
}

// The ledger of what clients were told: expected balances from acknowledged transfers, and
// transfers whose outcome is unknown (the node died during the call), to be asked again.
struct ledger {
  std::mutex mtx;
  std::map<std::string, int64_t> balance;
  std::vector<json> unknown;
  int acked = 0;
};

// Transfers between accounts of one node (a transfer runs where its `from` account lives),
// through `c`, until `stop`; each transfer has an id so that asking again never applies it
// twice.
int acked(ledger& l) {
  std::lock_guard g{l.mtx};
  return l.acked;
}

void transfer_loop(runtime::client c, const std::vector<std::string>& accts, const char* tag,
                   ledger& l, std::atomic<bool>& stop) {
  for (int k = 0; !stop; ++k) {
    auto& from = accts[static_cast<size_t>(k) % accts.size()];
    auto& to = accts[static_cast<size_t>(k * 7 + 1) % accts.size()];
    if (from == to)
      continue;
    json args{{"id", std::string{tag} + "-" + std::to_string(k)},
              {"from", from},
              {"to", to},
              {"amount", 1 + k % 5}};
    auto r = c.call("bank.transfer", args.dump(), "teller", 10s);
    std::lock_guard g{l.mtx};
    if (r) {
      l.balance[from] -= args["amount"].get<int64_t>();
      l.balance[to] += args["amount"].get<int64_t>();
      ++l.acked;
    } else if (is(r.error(), errc::procedure_failed)) {
      // insufficient funds: refused, nothing applied
    } else {
      l.unknown.push_back(args); // the node died or was cut during the call
      return;                    // this client's node is gone: stop using it
    }
  }
}

int64_t balance_of(const runtime::client& c, const std::string& account) {
  auto r = c.call("bank.balance", json{{"account", account}}.dump(), "teller", 20s);
  REQUIRE_MESSAGE(r, account << ": " << test::why(r));
  return (*r)["balance"].get<int64_t>();
}

std::string read(const std::string& path) {
  std::ifstream f{path};
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

} // namespace

TEST_SUITE("cluster.bank") {
  TEST_CASE("kill -9 a state node under load, restart it: no acknowledged transfer lost") {
    if (auto why = test::netns_hosts::unavailable(); !why.empty()) {
      MESSAGE("SKIPPED: " << why);
      return;
    }
    cluster c;
    REQUIRE_MESSAGE(c.hosts.error().empty(), c.hosts.error());
    c.write_config();
    for (int i = 0; i < 3; ++i)
      c.start(i);
    auto owner = make_accounts();
    std::vector<std::string> on[2];
    for (auto& [a, n] : owner)
      on[n].push_back(a);
    ledger l;
    {
      auto inside = c.hosts.enter(3); // the clients' host
      REQUIRE_MESSAGE(inside->ok(), inside->why());
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      auto c1 = connect(sys, c, 0), c2 = connect(sys, c, 1);
      REQUIRE_MESSAGE(c1, test::why(c1) << "\n" << read(c.log(0)));
      REQUIRE_MESSAGE(c2, test::why(c2) << "\n" << read(c.log(1)));
      // Every account opened through n1: n2's are routed there.
      for (auto& [a, n] : owner) {
        auto r = c1->call("bank.open", json{{"account", a}, {"balance", opening}}.dump(), "admin",
                          20s);
        REQUIRE_MESSAGE(r, a << ": " << test::why(r));
        l.balance[a] = opening;
      }
      // Load through both nodes: each client moves money among the accounts of the node it
      // is connected to.
      std::atomic<bool> stop{false};
      std::thread t1{[&] { transfer_loop(*c1, on[0], "a", l, stop); }};
      std::thread t2{[&] { transfer_loop(*c2, on[1], "b", l, stop); }};
      test::wait_until([&] { return acked(l) >= 60; }, 60s, "60 acknowledged transfers");
      c.nodes[0]->kill(SIGKILL); // n1 dies under load
      c.nodes[0].reset();
      t1.join();
      // n2 keeps serving its own partitions meanwhile.
      auto before = acked(l);
      test::wait_until([&] { return acked(l) >= before + 10; }, 30s, "n2 serving while n1 is down");
      stop = true;
      t2.join();
      c.start(0);
      auto again = connect(sys, c, 0);
      REQUIRE_MESSAGE(again, test::why(again) << "\n" << read(c.log(0)));
      // A transfer whose outcome the client did not hear: asking again with its id applies
      // it at most once (already_exists: it had committed).
      for (auto& args : l.unknown) {
        auto r = again->call("bank.transfer", args.dump(), "teller", 20s);
        if (r || is(r.error(), errc::already_exists)) {
          l.balance[args["from"].get<std::string>()] -= args["amount"].get<int64_t>();
          l.balance[args["to"].get<std::string>()] += args["amount"].get<int64_t>();
        } else {
          CHECK_MESSAGE(is(r.error(), errc::procedure_failed), test::why(r));
        }
      }
      // Every acknowledged transfer is there, and the money is all there, over both nodes.
      int64_t total = 0;
      for (auto& [a, n] : owner) {
        auto b = balance_of(n == 0 ? *again : *c2, a);
        CHECK_MESSAGE(b == l.balance[a], a << " on n" << n + 1);
        total += b;
      }
      CHECK(total == opening * static_cast<int64_t>(owner.size()));
      MESSAGE(l.acked << " transfers acknowledged, " << l.unknown.size()
                      << " asked again after the restart");
    }
    for (int i = 0; i < 3; ++i)
      CHECK(WIFEXITED(c.stop(i)));
    // Each node's log replays to its data folder's digest.
    auto out = c.dir.path() + "/verify.txt";
    test::child_process verify{{test::comb_binary(), "cluster", "verify", "--config", c.config},
                               out};
    int st = verify.wait();
    auto text = read(out);
    CHECK_MESSAGE(WIFEXITED(st), text);
    CHECK_MESSAGE(WEXITSTATUS(st) == 0, text);
    CHECK_MESSAGE(text.find("n1: ok:") != std::string::npos, text);
    CHECK_MESSAGE(text.find("n2: ok:") != std::string::npos, text);
    // Both nodes' logs met in one store, each under its name.
    auto s = test::must(storage::sql_store::open(c.store, /*read_only=*/true));
    auto nodes = test::must(s->nodes());
    CHECK(std::set<std::string>(nodes.begin(), nodes.end()).count("n1") == 1);
    CHECK(std::set<std::string>(nodes.begin(), nodes.end()).count("n2") == 1);
    auto n1 = test::must(
      s->query("SELECT COUNT(*) AS n FROM bank_transfers_events WHERE node = 'n1'"));
    auto n2 = test::must(
      s->query("SELECT COUNT(*) AS n FROM bank_transfers_events WHERE node = 'n2'"));
    CHECK(n1[0]["n"].get<int>() > 0);
    CHECK(n2[0]["n"].get<int>() > 0);
  }

  TEST_CASE("cut a state node's host off and heal it: errors within the timeout, no split brain") {
    if (auto why = test::netns_hosts::unavailable(); !why.empty()) {
      MESSAGE("SKIPPED: " << why);
      return;
    }
    cluster c;
    REQUIRE_MESSAGE(c.hosts.error().empty(), c.hosts.error());
    c.write_config();
    for (int i = 0; i < 2; ++i)
      c.start(i);
    auto owner = make_accounts();
    {
      auto inside = c.hosts.enter(3);
      REQUIRE_MESSAGE(inside->ok(), inside->why());
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      auto c1 = connect(sys, c, 0);
      REQUIRE_MESSAGE(c1, test::why(c1) << "\n" << read(c.log(0)));
      // n2 up too before n1 routes the opening of its accounts there.
      auto c2 = connect(sys, c, 1);
      REQUIRE_MESSAGE(c2, test::why(c2) << "\n" << read(c.log(1)));
      for (auto& [a, n] : owner)
        REQUIRE_MESSAGE(c1->call("bank.open", json{{"account", a}, {"balance", opening}}.dump(),
                                 "admin", 20s),
                        a);
      std::string a1, a2; // an account of n1's and one of n2's
      for (auto& [a, n] : owner)
        (n == 0 ? a1 : a2) = a;
      REQUIRE_MESSAGE(c.hosts.cut(1), c.hosts.error()); // n2's host is off the network
      // n1 still serves its partitions.
      CHECK(balance_of(*c1, a1) == opening);
      // A call for n2's partitions fails with an error, not a hang: n1's forward has its own
      // bound (the config's forward_timeout, 3 s), and the error names n2, even for a client
      // that would wait far longer (`comb call` without --timeout waits 60 s).
      auto t0 = std::chrono::steady_clock::now();
      auto r = c1->call("bank.balance", json{{"account", a2}}.dump(), "teller", 60s);
      auto took = std::chrono::steady_clock::now() - t0;
      REQUIRE(!r);
      auto why = test::why(r);
      MESSAGE("a call for the cut node's partition: " << why);
      CHECK_MESSAGE(took < 15s, why);
      CHECK_MESSAGE(is(r.error(), errc::timeout), why);
      CHECK_MESSAGE(why.find("node n2 (" + c.address(1).to_string() + ")") != std::string::npos,
                    why);
      CHECK_MESSAGE(why.find("forward timeout (3000 ms)") != std::string::npos, why);
      // No split brain: n1 does not serve n2's partitions in its place (the write is refused,
      // never applied on n1).
      auto w = c1->call("bank.transfer",
                        json{{"id", "cut-1"}, {"from", a2}, {"to", a2 + "x"}, {"amount", 1}}.dump(),
                        "teller", 5s);
      CHECK(!w);
      CHECK(balance_of(*c1, a1) == opening);
      REQUIRE_MESSAGE(c.hosts.heal(1), c.hosts.error());
      // After the heal, calls for n2's partitions succeed again, nodes not restarted.
      caf::expected<json> back = make_error(errc::unavailable, "not tried");
      test::wait_until(
        [&] {
          back = c1->call("bank.balance", json{{"account", a2}}.dump(), "teller", 5s);
          return static_cast<bool>(back);
        },
        60s, "n2's partitions reachable through n1 after the heal");
      REQUIRE_MESSAGE(back, test::why(back) << "\n" << read(c.log(0)) << "\n" << read(c.log(1)));
      CHECK((*back)["balance"] == opening);
      CHECK(c.nodes[0]->running());
      CHECK(c.nodes[1]->running());
    }
    for (int i = 0; i < 2; ++i)
      c.stop(i);
  }
}
