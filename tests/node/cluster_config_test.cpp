// Tests for comb::runtime::cluster_config: good files parse; wrong ones name file, node and key.
#include "node/cluster_config.hpp"

#include "base/errc.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <fstream>

using namespace comb;

namespace {

std::string error_of(const std::string& text) {
  auto r = runtime::parse_cluster_config(text, "test.toml");
  REQUIRE(!r);
  CHECK(is(r.error(), errc::bad_config));
  return describe(r.error());
}

// Two state nodes on distinct ports, then `extra` appended (one error each below).
std::string two(const std::string& cluster, const std::string& n1, const std::string& n2,
                const std::string& extra = "") {
  return "[cluster]\nname='c'\n" + cluster + "\n[[node]]\nname='n1'\nlisten='127.0.0.1:5001'\n"
         + "data='d1'\n" + n1 + "\n[[node]]\nname='n2'\nlisten='127.0.0.1:5002'\ndata='d2'\n" + n2
         + "\n" + extra;
}

} // namespace

TEST_SUITE("node.cluster_config") {
  TEST_CASE("the shipped configs parse") {
    auto c = runtime::load_cluster_config(COMB_SOURCE_DIR "/cluster_configs/single.toml", "/base");
    REQUIRE_MESSAGE(c, test::why(c));
    REQUIRE(c->nodes.size() == 1);
    auto* n = c->find("n1");
    REQUIRE(n);
    CHECK(n->node.port == 4242);
    CHECK(n->node.data_dir == "/base/data/n1");
    CHECK(n->node.partitions == 4);
    CHECK(n->node.durability == storage::durability::sync);
  }

  TEST_CASE("wrong configs get errors that name the problem") {
    CHECK(error_of("[[node]\nname='x'").find("test.toml:1") != std::string::npos);
    CHECK(error_of("[cluster]\nname='c'").find("no nodes") != std::string::npos);
    CHECK(error_of("[[node]]\ndata='d'").find("missing 'name'") != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'").find("missing 'data'") != std::string::npos);
    // An empty path got as far as the node: "bad_config: no data folder given", naming no file.
    CHECK(error_of("[[node]]\nname='a'\ndata=''").find("test.toml: node 'a': 'data' is empty")
          != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\npartitions=0").find("partitions")
          != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\nlisten='host:99999'").find("listen")
          != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\ndurability='maybe'").find("durability")
          != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\ncolour='red'").find("unknown key 'colour'")
          != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\nlisten='1.2.3.4:1'\n[[node]]\nname='a'\ndata='e'")
            .find("duplicate")
          != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\nroles=['chef']").find("roles")
          != std::string::npos);
    auto missing = runtime::load_cluster_config("/nonexistent/x.toml");
    REQUIRE(!missing);
    CHECK(describe(missing.error()).find("/nonexistent/x.toml") != std::string::npos);
  }

  TEST_CASE("the shipped cluster configs parse and place every partition once") {
    for (auto f : {"three.toml", "demo.toml"}) {
      auto c = runtime::load_cluster_config(std::string{COMB_SOURCE_DIR "/cluster_configs/"} + f);
      REQUIRE_MESSAGE(c, test::why(c));
      for (uint32_t p = 0; p < c->partitions; ++p)
        CHECK(c->owner_of(p) != nullptr);
    }
    auto c = runtime::load_cluster_config(COMB_SOURCE_DIR "/cluster_configs/three.toml");
    REQUIRE(c);
    CHECK(c->partitions == 8);
    CHECK(c->owner_of(5)->node.name == "n2");
    auto n1 = c->node_config_for("n1");
    REQUIRE(n1);
    CHECK(n1->owned == std::vector<uint32_t>{0, 1, 2, 3});
    REQUIRE(n1->peers.size() == 1); // n2; n3 runs no partitions
    CHECK(n1->peers[0].name == "n2");
    CHECK(n1->peers[0].address.port == 4302);
    REQUIRE(n1->compute);
    CHECK(n1->compute->port == 4313);
    auto n3 = c->node_config_for("n3");
    REQUIRE(n3);
    CHECK(n3->owned.empty());
    CHECK(n3->peers.size() == 2);
    CHECK(!c->node_config_for("n9"));
  }

  TEST_CASE("one node with an integer partition count owns all of them") {
    auto c = runtime::parse_cluster_config("[[node]]\nname='a'\ndata='d'\npartitions=6", "t.toml");
    REQUIRE_MESSAGE(c, test::why(c));
    CHECK(c->partitions == 6);
    CHECK(c->nodes[0].node.owned.size() == 6);
  }

  TEST_CASE("cluster errors: one case per problem, each naming file, key and problem") {
    auto ok = runtime::parse_cluster_config(
      two("partitions=4", "partitions=[0,1]", "partitions=[2,3]"), "test.toml");
    REQUIRE_MESSAGE(ok, test::why(ok));
    auto has = [](const std::string& text, const std::string& what) {
      auto e = error_of(text);
      CHECK_MESSAGE(e.find(what) != std::string::npos, e);
      CHECK_MESSAGE(e.find("test.toml") != std::string::npos, e);
    };
    // unknown keys and roles
    has(two("partitions=4\ncolour='red'", "partitions=[0,1]", "partitions=[2,3]"),
        "[cluster]: unknown key 'colour'");
    has(two("partitions=4", "partitions=[0,1]\nroles=['state','chef']", "partitions=[2,3]"),
        "unknown role 'chef'");
    has("[clusterr]\n[[node]]\nname='a'\ndata='d'", "unknown table or key 'clusterr'");
    // duplicate address
    has(two("partitions=4", "partitions=[0,1]",
            "partitions=[2,3]\n[[node]]\nname='n3'\nlisten='127.0.0.1:5001'\ndata='d3'\n"
            "roles=['spooler']"),
        "127.0.0.1:5001 is already n1's listen");
    // partitions placed twice, nowhere, out of range, missing count, integer on two nodes
    has(two("partitions=4", "partitions=[0,1,2]", "partitions=[2,3]"),
        "partition 2 is placed twice (also on node 'n1')");
    has(two("partitions=4", "partitions=[0]", "partitions=[2,3]"),
        "partition(s) 1 placed on no node");
    has(two("partitions=4", "partitions=[0,1]", "partitions=[2,3,4]"),
        "partition 4 is out of range");
    has(two("", "partitions=[0,1]", "partitions=[2,3]"), "[cluster] partitions: missing");
    has(two("partitions=4", "partitions=2", "partitions=[2,3]"),
        "an integer 'partitions' only works");
    has(two("partitions=4", "partitions=[0,1]", ""), "node 'n2': missing 'partitions'");
    // bad host:port
    has("[cluster]\npartitions=2\n[[node]]\nname='n1'\nlisten='127.0.0.1:70000'\ndata='d'",
        "node 'n1': 'listen'");
    // compute naming no compute node, or a node without the compute role
    has(two("partitions=4", "partitions=[0,1]\ncompute='n7'", "partitions=[2,3]"),
        "'compute' names 'n7', which is no node");
    has(two("partitions=4", "partitions=[0,1]\ncompute='n2'", "partitions=[2,3]"),
        "which has no \"compute\" role");
    has(two("partitions=4", "partitions=[0,1]", "partitions=[2,3]",
            "[[node]]\nname='c'\nlisten='127.0.0.1:5003'\ndata='d3'\nroles=['compute']"),
        "needs 'compute_listen'");
    // cpus: taskset's list syntax, checked while parsing
    has(two("partitions=4", "partitions=[0,1]\ncpus='0-x'", "partitions=[2,3]"),
        "node 'n1': 'cpus': ");
    has(two("partitions=4", "partitions=[0,1]\ncpus='0-x'", "partitions=[2,3]"),
        "CPU list '0-x': '0-x' is not a range");
    has(two("partitions=4", "partitions=[0,1]\ncpus=3", "partitions=[2,3]"),
        "node 'n1': 'cpus' must be a string");
    {
      auto placed = runtime::parse_cluster_config(
        two("partitions=4", "partitions=[0,1]\ncpus='1,0'", "partitions=[2,3]"), "test.toml");
      REQUIRE_MESSAGE(placed, test::why(placed));
      CHECK(placed->find("n1")->cpus == std::vector<int>{0, 1});
      CHECK(placed->find("n2")->cpus.empty());
    }
    // missing TLS and secret files
    has(two("partitions=4\n[cluster.tls]\nca='/nonexistent/ca.pem'\ncert='x'\nkey='y'",
            "partitions=[0,1]", "partitions=[2,3]"),
        "[cluster.tls] ca: /nonexistent/ca.pem does not exist");
    has(two("partitions=4\nsecret_file='/nonexistent/secret'", "partitions=[0,1]",
            "partitions=[2,3]"),
        "[cluster] secret_file: /nonexistent/secret");
    // no state node at all
    has("[[node]]\nname='a'\ndata='d'\nroles=['spooler']", "no node has the \"state\" role");
  }

  TEST_CASE("TLS and secret files resolve against the config file's folder") {
    test::temp_dir tmp;
    const auto& dir = tmp.path();
    for (auto f : {"ca.pem", "node.pem", "node.key", "secret"}) {
      std::ofstream out{dir + "/" + f};
      out << "x\n";
    }
    std::ofstream{dir + "/c.toml"} << "[cluster]\nsecret_file='secret'\n[cluster.tls]\n"
                                      "ca='ca.pem'\ncert='node.pem'\nkey='node.key'\n"
                                      "[[node]]\nname='a'\ndata='d'\n";
    auto c = runtime::load_cluster_config(dir + "/c.toml");
    REQUIRE_MESSAGE(c, test::why(c));
    CHECK(c->tls.enabled());
    CHECK(c->tls.ca_file == dir + "/ca.pem");
    CHECK(c->node_config_for("a")->tls.key_file == dir + "/node.key");
    CHECK(c->secret == "x");
  }

  TEST_CASE("forward_timeout: 5 s by default, seconds when given, checked") {
    auto d = runtime::parse_cluster_config(
      two("partitions=4", "partitions=[0,1]", "partitions=[2,3]"), "test.toml");
    REQUIRE_MESSAGE(d, test::why(d));
    CHECK(d->forward_timeout == std::chrono::milliseconds{5000});
    CHECK(d->node_config_for("n1")->forward_timeout == std::chrono::milliseconds{5000});
    auto h = runtime::parse_cluster_config(two("partitions=4\nforward_timeout=0.5",
                                               "partitions=[0,1]", "partitions=[2,3]"),
                                           "test.toml");
    REQUIRE_MESSAGE(h, test::why(h));
    CHECK(h->node_config_for("n2")->forward_timeout == std::chrono::milliseconds{500});
    auto i = runtime::parse_cluster_config(
      two("partitions=4\nforward_timeout=2", "partitions=[0,1]", "partitions=[2,3]"), "test.toml");
    REQUIRE_MESSAGE(i, test::why(i));
    CHECK(i->forward_timeout == std::chrono::milliseconds{2000});
    for (auto bad : {"forward_timeout=0", "forward_timeout=-1", "forward_timeout='5s'",
                     "forward_timeout=7200"})
      CHECK(
        error_of(two(std::string{"partitions=4\n"} + bad, "partitions=[0,1]", "partitions=[2,3]"))
          .find("[cluster] forward_timeout: must be a number of seconds")
        != std::string::npos);
  }

} // TEST_SUITE

TEST_SUITE("node.cluster_config apps") {
  TEST_CASE("the nectar and console roles: where they listen, checked") {
    auto one = [](const std::string& node) {
      return "[[node]]\nname='a'\nlisten='127.0.0.1:5001'\ndata='d'\npartitions=2\n" + node;
    };
    auto c = runtime::parse_cluster_config(
      one("roles=['state','spooler','nectar','console']\nnectar_listen='127.0.0.1:5080'\n"
          "console_listen='127.0.0.1:5090'"),
      "test.toml");
    REQUIRE_MESSAGE(c, test::why(c));
    REQUIRE(c->nodes[0].nectar_listen);
    CHECK(c->nodes[0].nectar_listen->port == 5080);
    REQUIRE(c->nodes[0].console_listen);
    CHECK(c->nodes[0].console_listen->port == 5090);
    auto has = [](const std::string& text, const std::string& what) {
      auto e = error_of(text);
      CHECK_MESSAGE(e.find(what) != std::string::npos, e);
    };
    has(one("roles=['state','nectar']"), "role \"nectar\" needs 'nectar_listen'");
    has(one("roles=['state','spooler','console']"), "role \"console\" needs 'console_listen'");
    has(one("roles=['state','console']\nconsole_listen='127.0.0.1:5090'"),
        "role \"console\" needs the \"spooler\" role");
    has(one("roles=['state']\nnectar_listen='127.0.0.1:5080'"),
        "'nectar_listen' given but the node has no \"nectar\" role");
    has(one("roles=['state','nectar']\nnectar_listen='127.0.0.1:5001'"),
        "127.0.0.1:5001 is already a's listen");
    has(one("roles=['state','nectar']\nnectar_listen=8080"), "'nectar_listen' must be");
  }
}
