// The cluster's shared secret with TLS off (README "Clusters"): two `comb node --config F
// --name N` processes whose config holds a secret_file. A client that does not prove the
// secret is refused (permission_denied, saying why) and the node logs it; a client with a
// wrong secret is refused when it connects; a client with the secret is served, and n1's
// link to n2 proves the secret too (a call forwarded to n2 is served). `comb call` with and
// without --secret-file, from processes of their own.
#include "node/client.hpp"
#include "runtime/procedure_registry.hpp"
#include "runtime/system_config.hpp"
#include "tests/node/cluster_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <caf/actor_system.hpp>

#include <fstream>

using namespace comb;
using namespace std::chrono_literals;

TEST_SUITE("node.cluster_secret") {
  TEST_CASE("without the secret a client is refused; with it, it is served through both nodes") {
    test::temp_dir dir;
    int p1 = test::free_port(), p2 = test::free_port();
    std::ofstream{dir.path() + "/secret.txt"} << "correct horse battery staple\n";
    std::ofstream{dir.path() + "/wrong.txt"} << "incorrect horse\n";
    auto config = test::pair_config(dir.path() + "/two.toml", dir.path(), p1, p2, 8, "[0, 1, 2, 3]",
                                    "[4, 5, 6, 7]", "secret_file = 'secret.txt'\n");
    std::unique_ptr<test::child_process> nodes[2];
    for (int i = 0; i < 2; ++i) {
      auto name = "n" + std::to_string(i + 1);
      nodes[i] = test::start_config_node(config, name, dir.path() + "/" + name + ".log");
    }
    // An account on n2's partitions, reached through n1.
    std::string theirs;
    for (int k = 0; theirs.empty(); ++k)
      if (runtime::partition_hash("acct-" + std::to_string(k)) % 8 >= 4)
        theirs = "acct-" + std::to_string(k);
    auto open_args = R"({"account":")" + theirs + R"(","balance":100})";

    // The CLI first: each `comb call` is a process (a CAF node) of its own.
    auto addr = "127.0.0.1:" + std::to_string(p1);
    auto no = test::run_comb({"call", "--node", addr, "bank.total", "{}"}, dir.path() + "/c1.txt");
    CHECK(no.rc != 0);
    CHECK_MESSAGE(no.out.find("permission_denied") != std::string::npos, no.out);
    CHECK_MESSAGE(no.out.find("requires the cluster's shared secret") != std::string::npos, no.out);
    auto bad = test::run_comb({"call", "--node", addr, "--secret-file", dir.path() + "/wrong.txt",
                               "bank.total", "{}"},
                              dir.path() + "/c2.txt");
    CHECK(bad.rc != 0);
    CHECK_MESSAGE(bad.out.find("does not hold the cluster's shared secret") != std::string::npos,
                  bad.out);
    auto good = test::run_comb({"call", "--node", addr, "--secret-file", dir.path() + "/secret.txt",
                                "bank.open", open_args},
                               dir.path() + "/c3.txt");
    CHECK_MESSAGE(good.rc == 0, good.out); // forwarded to n2: n1's link proved the secret there
    auto log1 = test::read_file(dir.path() + "/n1.log");
    CHECK_MESSAGE(log1.find("has not proved the cluster's shared secret") != std::string::npos,
                  log1);
    CHECK_MESSAGE(log1.find("wrong shared secret") != std::string::npos, log1);

    // In this process: without the secret, calls and info are refused, and the node serves on.
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    endpoint n1{"127.0.0.1", static_cast<uint16_t>(p1)};
    auto anon = runtime::client::connect(sys, n1, 10s);
    REQUIRE_MESSAGE(anon, test::why(anon));
    auto r = anon->call("bank.balance", R"({"account":")" + theirs + R"("})", "guest", 10s);
    REQUIRE(!r);
    CHECK_MESSAGE(is(r.error(), errc::permission_denied), test::why(r));
    auto info = anon->info();
    CHECK(!info);
    auto wrong = runtime::client::connect(sys, n1, 10s, {}, "incorrect horse");
    REQUIRE(!wrong);
    CHECK_MESSAGE(is(wrong.error(), errc::permission_denied), test::why(wrong));
    auto ok = runtime::client::connect(sys, n1, 10s, {}, "correct horse battery staple");
    REQUIRE_MESSAGE(ok, test::why(ok));
    auto b = ok->call("bank.balance", R"({"account":")" + theirs + R"("})", "guest", 10s);
    REQUIRE_MESSAGE(b, test::why(b));
    CHECK((*b)["balance"] == 100);
    CHECK(nodes[0]->running());
    CHECK(nodes[1]->running());
  }
}
