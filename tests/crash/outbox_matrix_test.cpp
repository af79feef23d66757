// The crash matrix's outbox half (issue 16): for each sync point on the path of a function
// call (the outbox's after-commit step, the dispatcher's send, a result back from the compute
// process not yet applied, the result procedure's transaction not yet committed), a
// `comb node` child process (sync durability, provenance and spooling on) with a
// `comb compute` process classifies images with an MLP through imaging.classify (each call an
// outbox call, its result applied by imaging.classified) from two client threads, and kills
// itself with SIGKILL at that point. It restarts on the same folder with the same compute
// process and runs until no call is pending. Then no committed call is lost (every
// acknowledged call is in imaging_calls, and the outbox is empty), every call ended with
// exactly one result (its imaging_calls row is done, its outbox done row exists, and the log
// holds exactly one applied run of its result procedure), the log verifies against the
// database with lsns dense from 1, and replay gives the database's digest.
#include "apps/imaging/imaging_calls.hpp"
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"
#include "storage/provenance_log.hpp"
#include "storage/transaction.hpp"
#include "tests/client_util.hpp"
#include "tests/crash/crash_util.hpp"
#include "tests/support/classify_calls.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

using namespace comb;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr int images = 16;
constexpr int per_call = 2;
constexpr int threads = 2;
/// Calls a client thread makes at most (the kill comes long before).
constexpr int max_calls = 60;

struct point {
  const char* name;
  /// COMB_KILL_AFTER: the hit that kills. The model's load call is the first hit of every
  /// point; the classify calls follow.
  int after;
};

std::vector<std::string> node_argv(const std::string& data, int port, int compute_port) {
  return {test::comb_binary(),
          "node",
          "--data",
          data,
          "--listen",
          "127.0.0.1:" + std::to_string(port),
          "--compute",
          "127.0.0.1:" + std::to_string(compute_port),
          "--durability",
          "sync",
          "--partitions",
          "2"};
}

struct acked {
  std::mutex mtx;
  std::vector<std::string> calls;
  std::string setup_error;
};

// Client threads: classify two images a call until the node is gone (a call refused because
// the model is not active yet is tried again).
void load(caf::actor_system& sys, int port, acked& out) {
  auto c = test::connect_retry(sys, port);
  if (!c) { // said by the test's thread (doctest's REQUIRE aborts in any other)
    out.setup_error = test::why(c);
    return;
  }
  if (auto err = test::set_up_mlp_images(*c, images); !err.empty()) {
    out.setup_error = err;
    return;
  }
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t)
    clients.emplace_back([&, t] {
      for (int i = 0; i < max_calls; ++i) {
        int from = ((t * max_calls + i) * per_call) % images;
        auto r = c->call(
          "imaging.classify",
          json{{"dataset", "d"}, {"model", "mlp"}, {"from", from}, {"limit", per_call}}.dump(),
          "admin", 10s);
        if (!r) {
          if (is(r.error(), errc::bad_model)) { // not active yet
            std::this_thread::sleep_for(20ms);
            --i;
            continue;
          }
          return;
        }
        std::lock_guard guard{out.mtx};
        out.calls.push_back(r->at("call").get<std::string>());
      }
    });
  for (auto& th : clients)
    th.join();
}

void check_point(caf::actor_system& sys, const point& p) {
  test::temp_dir dir;
  auto data = dir.path() + "/node";
  auto log_dir = data + "/provenance";
  std::string name = p.name;
  CAPTURE(name);
  int compute_port = test::free_port();
  std::fflush(stdout);
  test::child_process compute{{test::comb_binary(), "compute", "--listen",
                               "127.0.0.1:" + std::to_string(compute_port), "--threads", "1"},
                              dir.path() + "/compute.log"};
  REQUIRE(test::wait_for_line(dir.path() + "/compute.log", "listening on", 30s, &compute));
  acked ack;
  {
    int port = test::free_port();
    auto argv = node_argv(data, port, compute_port);
    argv.insert(argv.begin(), {"/usr/bin/env", std::string{"COMB_KILL_AT="} + p.name,
                               "COMB_KILL_AFTER=" + std::to_string(p.after)});
    test::child_process node{argv, dir.path() + "/node1.log"};
    std::thread loader{[&] { load(sys, port, ack); }};
    int status = test::wait_exit(node, 60s);
    if (status == -1)
      node.kill(SIGKILL);
    loader.join();
    REQUIRE_MESSAGE(ack.setup_error.empty(), ack.setup_error
                                               << "; node log:\n"
                                               << test::read_file(dir.path() + "/node1.log"));
    CHECK_MESSAGE(test::killed_at_point(status), "status "
                                                   << status << "; node log:\n"
                                                   << test::read_file(dir.path() + "/node1.log"));
  }
  MESSAGE(name << ": " << ack.calls.size() << " calls acknowledged before the kill");

  // Restart with the same compute process; run until no call is pending; stop cleanly.
  {
    int port = test::free_port();
    test::child_process node{node_argv(data, port, compute_port), dir.path() + "/node2.log"};
    auto c = test::connect_retry(sys, port);
    REQUIRE_MESSAGE(c, test::why(c) << "\n" << test::read_file(dir.path() + "/node2.log"));
    json pending;
    test::wait_until(
      [&] {
        auto r = c->call("imaging.pending", json{{"model", "mlp"}}.dump(), "admin", 10s);
        REQUIRE_MESSAGE(r, test::why(r));
        pending = *r;
        return pending.empty();
      },
      60s, "no imaging call pending");
    CHECK_MESSAGE(pending.empty(), pending.dump() << "\nnode log:\n"
                                                  << test::read_file(dir.path() + "/node2.log"));
    int status = node.kill(SIGTERM);
    CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  test::read_file(dir.path() + "/node2.log"));
  }

  // No committed call lost; each ended with one result, applied; the log is whole.
  test::check_each_call_applied_once(data, log_dir, ack.calls);
  test::check_verify(dir.path(), data, log_dir);
  test::check_replay_digest(dir.path(), data, log_dir);
}

} // namespace

TEST_SUITE("node.crash_matrix_outbox") {
  TEST_CASE("a kill at each outbox sync point loses no call and applies each result once") {
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    const std::vector<point> points{
      {"outbox.after_commit", 6},
      {"dispatcher.after_send", 6},
      {"dispatcher.before_apply", 6},
      {"outbox.result_before_commit", 6},
    };
    for (auto& p : points) {
      SUBCASE(p.name) {
        check_point(sys, p);
      }
    }
  }

} // TEST_SUITE
