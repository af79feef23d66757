// Tests for comb::runtime::cluster_config: good files parse; wrong ones name file, node and key.
#include "node/cluster_config.hpp"

#include "base/errc.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

using namespace comb;

namespace {

std::string error_of(const std::string& text) {
  auto r = runtime::parse_cluster_config(text, "test.toml");
  REQUIRE(!r);
  CHECK(is(r.error(), errc::bad_config));
  return describe(r.error());
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
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\npartitions=0").find("partitions")
          != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\nlisten='host:99999'").find("listen")
          != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\ndurability='maybe'").find("durability")
          != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\ncolour='red'").find("unknown key 'colour'")
          != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\n[[node]]\nname='a'\ndata='e'").find("duplicate")
          != std::string::npos);
    CHECK(error_of("[[node]]\nname='a'\ndata='d'\nroles=['chef']").find("roles")
          != std::string::npos);
    auto missing = runtime::load_cluster_config("/nonexistent/x.toml");
    REQUIRE(!missing);
    CHECK(describe(missing.error()).find("/nonexistent/x.toml") != std::string::npos);
  }

} // TEST_SUITE
