// Models on a cluster (issue 19): three hosts in network namespaces (tests/support/netns.hpp)
// run n1 and n2 (state: partitions 0-3 and 4-7, both feeding n3's compute process) and n3
// (compute). A model whose name hashes to n2's partitions is stored and activated through n1
// (the model procedures go to n2), the images are stored through n1 (they stay there), and
// imaging.classify through n1 runs on n1 over its images with n1's mirror of n2's model:
// - the call ends with labels from the model's version, and n1 lists the version as a mirror
//   of n2's; imaging.train through n1 is refused, naming n2;
// - a newer version activated on n2 is used by n1's calls without a restart;
// - a model n2 does not have active gives bad_model at once, naming n2;
// - with n2 stopped, n1 classifies on with the version it holds, and a model it never
//   mirrored gives unavailable (or timeout) naming n2, never an endless wait;
// - n1's log verifies and replays to its folder's digest (the mirror is made by procedures).
// Skipped, visibly, where namespaces cannot be made (not root, no `ip netns`).
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "node/client.hpp"
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/procedure_registry.hpp"
#include "runtime/system_config.hpp"
#include "tests/crash/crash_util.hpp"
#include "tests/support/classify_calls.hpp"
#include "tests/support/netns_cluster.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <sys/wait.h>

using namespace comb;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr int images = 8;

// Stores version `version` of a 784-16-10 MLP (weights from `seed`) as `model` and activates it.
std::string store_and_activate(runtime::client& c, const std::string& model, int version,
                               int seed) {
  auto file = runtime::make_mlp_file({784, 16, 10}, seed);
  if (!file)
    return describe(file.error());
  auto r = c.call("comb.model.put_chunk",
                  json{{"name", model},
                       {"version", version},
                       {"chunk_no", 0},
                       {"data", base64_encode(*file)}}
                    .dump(),
                  "admin", 10s);
  if (r)
    r = c.call("comb.model.put",
               json{{"name", model},
                    {"version", version},
                    {"chunk_count", 1},
                    {"digest", runtime::model_digest(file->data(), file->size())}}
                 .dump(),
               "admin", 10s);
  if (r)
    r = c.call("comb.model.activate", json{{"name", model}, {"version", version}}.dump(),
               "admin", 10s);
  return r ? std::string{} : test::why(r);
}

caf::expected<json> classify(runtime::client& c, const std::string& model, int from = 0) {
  return c.call("imaging.classify",
                json{{"dataset", "d"}, {"model", model}, {"from", from}, {"limit", 4}}.dump(),
                "admin", 20s);
}

// Classifies through `c` until the model is active where it is kept (its activation loads it
// into the compute process first); the last answer.
caf::expected<json> classify_when_active(runtime::client& c, const std::string& model) {
  caf::expected<json> r = make_error(errc::unavailable, "not tried");
  test::wait_until(
    [&] {
      r = classify(c, model);
      return r || !is(r.error(), errc::bad_model);
    },
    60s, "model " + model + " active");
  return r;
}

// Waits until imaging call `call` has a result; its row.
json finished(runtime::client& c, const std::string& call) {
  json row;
  test::wait_until(
    [&] {
      auto r = c.call("imaging.call", json{{"call", call}}.dump(), "admin", 10s);
      if (r)
        row = *r;
      return r && r->value("state", "") != "pending";
    },
    60s, "imaging call " + call + " done");
  return row;
}

} // namespace

TEST_SUITE("cluster.models") {
  TEST_CASE("classify through any node with a model another node holds") {
    if (auto why = test::netns_hosts::unavailable(); !why.empty()) {
      MESSAGE("SKIPPED: " << why);
      return;
    }
    test::netns_cluster c;
    REQUIRE_MESSAGE(c.hosts.error().empty(), c.hosts.error());
    auto started = c.start_compute_cluster("forward_timeout = 3\n");
    REQUIRE_MESSAGE(started.empty(), started);
    // Models n2 keeps (partitions 4-7).
    auto model = test::name_on("m", 1, 0), never = test::name_on("m", 1, 1),
         unseen = test::name_on("m", 1, 2);
    {
      auto inside = c.hosts.enter(3); // the clients' host
      REQUIRE_MESSAGE(inside->ok(), inside->why());
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      auto c1 = test::connect_node(sys, c, 0), c2 = test::connect_node(sys, c, 1);
      REQUIRE_MESSAGE(c1, test::why(c1) << "\n" << test::read_file(c.log(0)));
      REQUIRE_MESSAGE(c2, test::why(c2) << "\n" << test::read_file(c.log(1)));
      auto err = test::set_up_mlp_images(*c1, images, model);
      REQUIRE_MESSAGE(err.empty(), err << "\n" << test::read_file(c.log(1)));
      // The model is n2's: n1 stores none of it until it classifies.
      auto on_n2 = c2->call("comb.model.list", "{}", "admin", 10s);
      REQUIRE_MESSAGE(on_n2, test::why(on_n2));
      CHECK_MESSAGE(on_n2->dump().find("\"" + model + "\"") != std::string::npos, on_n2->dump());

      auto r = classify_when_active(*c1, model);
      REQUIRE_MESSAGE(r, test::why(r) << "\nn1:\n" << test::read_file(c.log(0)));
      CHECK(r->value("version", 0) == 1);
      CHECK(r->value("images", 0) == 4);
      auto row = finished(*c1, r->at("call").get<std::string>());
      CHECK_MESSAGE(row.value("state", "") == "done", row.dump() << "\n" << test::read_file(c.log(0)));
      CHECK(row.value("result_version", 0) == 1);
      auto labels = c1->call("imaging.results", json{{"dataset", "d"}, {"model", model}}.dump(),
                             "admin", 10s);
      bool answered = labels && labels->dump().find("\"answered\":4") != std::string::npos;
      CHECK_MESSAGE(answered, (labels ? labels->dump() : test::why(labels)));
      auto listed = c1->call("comb.model.list", "{}", "admin", 10s);
      REQUIRE_MESSAGE(listed, test::why(listed));
      bool mirrored = false;
      for (auto& m : *listed)
        mirrored |= m.value("name", "") == model && m.value("mirror_of", "") == "n2"
                    && m.value("active", false);
      CHECK_MESSAGE(mirrored, listed->dump());

      // Training stores a new version where the model is kept: refused through n1.
      auto t = c1->call("imaging.train",
                        json{{"dataset", "d"}, {"model", model}, {"epochs", 1}, {"batch", 4},
                             {"lr", 0.1}}
                          .dump(),
                        "admin", 20s);
      REQUIRE(!t);
      CHECK_MESSAGE(is(t.error(), errc::unsupported), test::why(t));
      CHECK_MESSAGE(test::why(t).find("node n2") != std::string::npos, test::why(t));

      // A newer version activated on n2 reaches n1's calls.
      err = store_and_activate(*c1, model, 2, 2);
      REQUIRE_MESSAGE(err.empty(), err);
      caf::expected<json> v2 = make_error(errc::unavailable, "not tried");
      CHECK(test::wait_until(
        [&] {
          v2 = classify(*c1, model, 4);
          return v2 && v2->value("version", 0) == 2;
        },
        60s, "n1 classifying with version 2"));
      if (v2 && v2->contains("call"))
        CHECK(finished(*c1, v2->at("call").get<std::string>()).value("state", "") == "done");

      // A model n2 holds no active version of: a named error at once, not a wait.
      auto none = classify(*c1, never);
      REQUIRE(!none);
      CHECK_MESSAGE(is(none.error(), errc::bad_model), test::why(none));
      CHECK_MESSAGE(test::why(none).find("node n2") != std::string::npos, test::why(none));

      // n2 stops: n1 classifies on with the version it holds; a model it never mirrored gets
      // a named error within the forward timeout (3 s), below the client's 20 s.
      CHECK(WIFEXITED(c.stop(1)));
      auto on = classify(*c1, model, 2);
      CHECK_MESSAGE(on, test::why(on) << "\n" << test::read_file(c.log(0)));
      if (on && on->contains("call")) {
        CHECK(on->value("version", 0) == 2);
        CHECK(finished(*c1, on->at("call").get<std::string>()).value("state", "") == "done");
      }
      auto gone = classify(*c1, unseen);
      REQUIRE(!gone);
      bool named = is(gone.error(), errc::unavailable) || is(gone.error(), errc::timeout);
      CHECK_MESSAGE(named, test::why(gone));
      CHECK_MESSAGE(test::why(gone).find("n2") != std::string::npos, test::why(gone));
    }
    CHECK(WIFEXITED(c.stop(0)));
    CHECK(WIFEXITED(c.stop(2)));
    // The mirror was made by procedures in n1's log: it verifies and replays to the digest.
    auto data = c.data(0), log_dir = data + "/provenance";
    test::check_verify(c.dir.path(), data, log_dir);
    test::check_replay_digest(c.dir.path(), data, log_dir);
  }
}
