// A two-node cluster on loopback, as a user runs it: two `comb node --config F --name N`
// processes splitting 8 partitions. A client connected to n1 reaches accounts on n2's
// partitions (forwarded by n1's gateway), transfers within one node commit, transfers across
// nodes are refused naming the row, partition and node and change nothing, totals summed over
// the nodes are conserved; after `kill -9` of n2 its partitions fail at once (`unavailable`
// naming n2) while n1's keep working, and after n2 restarts they work again. Two nodes whose
// configs disagree refuse a forwarded call (`bad_config`) instead of passing it back and forth.
#include "node/client.hpp"
#include "runtime/procedure_registry.hpp"
#include "runtime/system_config.hpp"
#include "tests/client_util.hpp"
#include "tests/node/cluster_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <caf/actor_system.hpp>

#include <fstream>
#include <memory>

using namespace comb;
using namespace std::chrono_literals;

namespace {

struct two_nodes {
  test::temp_dir dir;
  int p1 = test::free_port();
  int p2 = test::free_port();
  std::string config = test::pair_config(dir.path() + "/two.toml", dir.path(), p1, p2, 8,
                                         "[0, 1, 2, 3]", "[4, 5, 6, 7]");
  std::unique_ptr<test::child_process> n1 = start("n1"), n2 = start("n2");

  std::string log(const std::string& name, int run = 0) const {
    return dir.path() + "/" + name + "-" + std::to_string(run) + ".log";
  }

  std::unique_ptr<test::child_process> start(const std::string& name, int run = 0) {
    return test::start_config_node(config, name, log(name, run));
  }
};

// Which node holds an account's row: the same hash routing uses, over 8 partitions.
bool on_n1(const std::string& account) {
  return runtime::partition_hash(account) % 8 < 4;
}

} // namespace

TEST_SUITE("node.cluster_routing") {
  TEST_CASE("two nodes: forwarding, same-node commits, cross-node refusal, failure and return") {
    two_nodes c;
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto a = test::connect_retry(sys, c.p1);
    REQUIRE_MESSAGE(a, test::why(a));
    // This process stays connected to both nodes through n2's kill (as a client of a whole
    // cluster is).
    auto b = std::make_unique<caf::expected<runtime::client>>(test::connect_retry(sys, c.p2));
    REQUIRE_MESSAGE(*b, test::why(*b));

    // Twenty accounts opened through n1, whichever node holds them.
    std::vector<std::string> mine, theirs;
    for (int i = 0; i < 20; ++i) {
      auto acct = "acct-" + std::to_string(i);
      auto r = a->call("bank.open", R"({"account":")" + acct + R"(","balance":100})", "admin");
      REQUIRE_MESSAGE(r, test::why(r));
      (on_n1(acct) ? mine : theirs).push_back(acct);
    }
    REQUIRE(mine.size() >= 2);
    REQUIRE(theirs.size() >= 2);
    // Each node holds exactly its partitions' rows: the node-local bank.total counts them.
    auto t1 = a->call("bank.total", "{}", "admin");
    auto t2 = (*b)->call("bank.total", "{}", "admin");
    REQUIRE_MESSAGE(t1, test::why(t1));
    REQUIRE_MESSAGE(t2, test::why(t2));
    CHECK((*t1)["accounts"] == mine.size());
    CHECK((*t2)["accounts"] == theirs.size());

    auto transfer = [&](runtime::client& via, const std::string& id, const std::string& from,
                        const std::string& to) {
      return via.call("bank.transfer",
                      R"({"id":")" + id + R"(","from":")" + from + R"(","to":")" + to
                        + R"(","amount":7})",
                      "admin");
    };
    auto balance = [&](runtime::client& via, const std::string& acct) -> int64_t {
      auto r = via.call("bank.balance", R"({"account":")" + acct + R"("})", "guest");
      REQUIRE_MESSAGE(r, test::why(r));
      return (*r)["balance"].get<int64_t>();
    };
    // Same node: on n1, and on n2 through n1's gateway.
    auto s1 = transfer(*a, "t1", mine[0], mine[1]);
    CHECK_MESSAGE(s1, test::why(s1));
    auto s2 = transfer(*a, "t2", theirs[0], theirs[1]);
    CHECK_MESSAGE(s2, test::why(s2));
    CHECK(balance(*a, theirs[0]) == 93);
    CHECK(balance(**b, theirs[1]) == 107);
    // Across nodes: refused, naming the row, its partition and node; nothing changes.
    auto x = transfer(*a, "t3", mine[0], theirs[0]);
    REQUIRE(!x);
    auto msg = describe(x.error());
    CHECK_MESSAGE(is(x.error(), errc::unsupported), msg);
    CHECK_MESSAGE(msg.find("row '" + theirs[0] + "' of table bank.accounts") != std::string::npos,
                  msg);
    CHECK_MESSAGE(
      msg.find("owned by node n2; this node (n1) runs partitions 0-3") != std::string::npos, msg);
    CHECK_MESSAGE(msg.find("Comb does not run one transaction across nodes") != std::string::npos,
                  msg);
    CHECK(balance(*a, mine[0]) == 93);
    CHECK(balance(*a, theirs[0]) == 93);
    // Conserved over the nodes.
    t1 = a->call("bank.total", "{}", "admin");
    t2 = (*b)->call("bank.total", "{}", "admin");
    REQUIRE(t1);
    REQUIRE(t2);
    CHECK((*t1)["total"].get<int64_t>() + (*t2)["total"].get<int64_t>() == 2000);

    // kill -9 n2: calls for its partitions fail at once (its port is closed: a refused
    // connect is `unavailable` naming n2, its address and the partition, not a wait for the
    // call's timeout), while n1's keep working.
    c.n2->kill(SIGKILL);
    for (int i = 0; i < 4; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      auto r = a->call("bank.balance", R"({"account":")" + theirs[0] + R"("})", "guest", 5s);
      auto took = std::chrono::steady_clock::now() - t0;
      REQUIRE(!r);
      auto m = describe(r.error());
      CHECK_MESSAGE(took < 2s, m << "\n" << test::read_file(c.log("n1")));
      CHECK_MESSAGE(is(r.error(), errc::unavailable), m);
      CHECK_MESSAGE(m.find("node n2 (127.0.0.1:" + std::to_string(c.p2) + ")") != std::string::npos,
                    m);
    }
    CHECK(balance(*a, mine[1]) == 107);

    // n2 back: its partitions answer again through n1, with what it had committed.
    c.n2 = c.start("n2", 1);
    int64_t back = -1;
    test::wait_until(
      [&] {
        auto r = a->call("bank.balance", R"({"account":")" + theirs[0] + R"("})", "guest", 5s);
        if (r)
          back = (*r)["balance"].get<int64_t>();
        return static_cast<bool>(r);
      },
      30s, "n2's partitions through n1 after n2's restart");
    CHECK(back == 93);
  }

  TEST_CASE("nodes whose configs disagree refuse a forwarded call instead of forwarding it back") {
    test::temp_dir dir;
    int p1 = test::free_port(), p2 = test::free_port();
    // n1's file: n2 runs 4-7. n2's file: n1 runs 4-7 (placement swapped). A call for
    // partition 4-7 reaching n1 goes to n2, which would send it back to n1, and so on.
    auto f1 = test::pair_config(dir.path() + "/n1.toml", dir.path(), p1, p2, 8, "[0, 1, 2, 3]",
                                "[4, 5, 6, 7]");
    auto f2 = test::pair_config(dir.path() + "/n2.toml", dir.path(), p1, p2, 8, "[4, 5, 6, 7]",
                                "[0, 1, 2, 3]");
    auto start = [&](const std::string& name, const std::string& file) {
      return test::start_config_node(file, name, dir.path() + "/" + name + ".log");
    };
    auto n1 = start("n1", f1);
    auto n2 = start("n2", f2);
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    auto a = test::connect_retry(sys, p1);
    REQUIRE_MESSAGE(a, test::why(a));
    std::string theirs;
    for (int i = 0; theirs.empty(); ++i)
      if (!on_n1("acct-" + std::to_string(i)))
        theirs = "acct-" + std::to_string(i);
    auto t0 = std::chrono::steady_clock::now();
    auto r = a->call("bank.open", R"({"account":")" + theirs + R"(","balance":100})", "admin", 8s);
    auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(!r);
    auto msg = describe(r.error());
    CHECK_MESSAGE(is(r.error(), errc::bad_config), msg);
    CHECK_MESSAGE(msg.find("node n2 refused a call forwarded by node n1") != std::string::npos,
                  msg);
    CHECK_MESSAGE(msg.find("places partition") != std::string::npos, msg);
    CHECK_MESSAGE(msg.find("on node n1") != std::string::npos, msg);
    CHECK_MESSAGE(msg.find("configs disagree") != std::string::npos, msg);
    CHECK_MESSAGE(took < 4s, msg); // refused at once, not bounced until a timeout

    // A partition count that differs is refused the same way, even for a partition n2 runs.
    n2->kill(SIGTERM);
    n2.reset();
    auto f3 = test::pair_config(dir.path() + "/n2b.toml", dir.path(), p1, p2, 16,
                                "[8, 9, 10, 11, 12, 13, 14, 15]", "[0, 1, 2, 3, 4, 5, 6, 7]");
    n2 = start("n2", f3);
    caf::expected<nlohmann::json> r2 = make_error(errc::unavailable, "not tried");
    test::wait_until(
      [&] {
        r2 = a->call("bank.open", R"({"account":")" + theirs + R"(","balance":100})", "admin", 8s);
        return r2 || !is(r2.error(), errc::unavailable);
      },
      30s, "n2 back with another partition count");
    REQUIRE(!r2);
    auto msg2 = describe(r2.error());
    CHECK_MESSAGE(is(r2.error(), errc::bad_config), msg2);
    CHECK_MESSAGE(msg2.find("of 8 to n2, but n2's has 16 partitions") != std::string::npos, msg2);
  }
}
