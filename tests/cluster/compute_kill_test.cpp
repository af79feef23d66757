// The compute node dies under load (issue 19): three hosts in network namespaces
// (tests/support/netns.hpp) run `comb node --config F --name N`: n1 and n2 state (partitions
// 0-3 and 4-7, each feeding n3's compute process), n3 compute. Clients on a fourth host
// classify images through n1 with a model n2 holds (n1 mirrors it; each call commits to n1's
// outbox and goes to n3) and move money on both state nodes. `kill -9` of n3 while calls are
// in flight: the state nodes keep serving (bank calls on both, and imaging calls still commit:
// they wait in the outbox); after n3 restarts, every call is sent again (n1 reloads the model
// from its mirror) and ends with exactly one applied result (n1's database and log say so),
// no acknowledged call is lost, and n1's log verifies and replays.
// Skipped, visibly, where namespaces cannot be made (not root, no `ip netns`).
#include "base/errc.hpp"
#include "node/client.hpp"
#include "runtime/procedure_registry.hpp"
#include "runtime/system_config.hpp"
#include "tests/crash/crash_util.hpp"
#include "tests/support/classify_calls.hpp"
#include "tests/support/netns_cluster.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <csignal>
#include <sys/wait.h>

using namespace comb;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr int images = 16;

// Acknowledged imaging calls (their ids) and bank calls, and the first unexpected error.
struct tally {
  std::mutex mtx;
  std::vector<std::string> calls;
  int bank_ok = 0;
  std::string error;
  size_t calls_now() {
    std::lock_guard g{mtx};
    return calls.size();
  }
  int bank_now() {
    std::lock_guard g{mtx};
    return bank_ok;
  }
};

// Classifies two images a call through `c` until `stop` (a call refused because the model
// is not active yet is tried again).
void classify_loop(runtime::client c, const std::string& model, int t, tally& out,
                   std::atomic<bool>& stop) {
  for (int i = 0; !stop; ++i) {
    auto r = c.call(
      "imaging.classify",
      json{{"dataset", "d"}, {"model", model}, {"from", (t * 7 + i * 2) % images}, {"limit", 2}}
        .dump(),
      "admin", 20s);
    if (!r && is(r.error(), errc::bad_model)) { // not active yet: the load is on its way
      std::this_thread::sleep_for(20ms);
      continue;
    }
    std::lock_guard g{out.mtx};
    if (r)
      out.calls.push_back(r->at("call").get<std::string>());
    else if (out.error.empty())
      out.error = "imaging.classify: " + test::why(r);
  }
}

// Transfers within one node's accounts through `c` until `stop`.
void bank_loop(runtime::client c, const std::string& a, const std::string& b, const char* tag,
               tally& out, std::atomic<bool>& stop) {
  for (int k = 0; !stop; ++k) {
    auto r = c.call("bank.transfer",
                    json{{"id", std::string{tag} + std::to_string(k)},
                         {"from", k % 2 ? a : b},
                         {"to", k % 2 ? b : a},
                         {"amount", 1}}
                      .dump(),
                    "teller", 20s);
    std::lock_guard g{out.mtx};
    if (r)
      ++out.bank_ok;
    else if (out.error.empty())
      out.error = std::string{"bank.transfer via "} + tag + ": " + test::why(r);
  }
}

} // namespace

TEST_SUITE("cluster.compute_kill") {
  TEST_CASE("kill -9 the compute node under load: state nodes serve on, each result applied once") {
    if (auto why = test::netns_hosts::unavailable(); !why.empty()) {
      MESSAGE("SKIPPED: " << why);
      return;
    }
    test::netns_cluster c;
    REQUIRE_MESSAGE(c.hosts.error().empty(), c.hosts.error());
    auto started = c.start_compute_cluster();
    REQUIRE_MESSAGE(started.empty(), started);
    // Two accounts on each state node.
    std::vector<std::string> a1{test::name_on("acct", 0, 0), test::name_on("acct", 0, 1)};
    std::vector<std::string> a2{test::name_on("acct", 1, 0), test::name_on("acct", 1, 1)};
    tally t;
    {
      auto inside = c.hosts.enter(3); // the clients' host
      REQUIRE_MESSAGE(inside->ok(), inside->why());
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      auto c1 = test::connect_node(sys, c, 0), c2 = test::connect_node(sys, c, 1);
      REQUIRE_MESSAGE(c1, test::why(c1) << "\n" << test::read_file(c.log(0)));
      REQUIRE_MESSAGE(c2, test::why(c2) << "\n" << test::read_file(c.log(1)));
      // A model n2 keeps: classify calls through n1 run there, over n1's images, with n1's
      // mirror of n2's model.
      auto model = test::name_on("mlp-", 1);
      auto err = test::set_up_mlp_images(*c1, images, model);
      REQUIRE_MESSAGE(err.empty(), err << "\n" << test::read_file(c.log(0)));
      for (auto& a : {a1[0], a1[1], a2[0], a2[1]})
        REQUIRE_MESSAGE(
          c1->call("bank.open", json{{"account", a}, {"balance", 1000}}.dump(), "admin", 20s), a);
      std::atomic<bool> stop{false};
      std::vector<std::thread> load;
      for (int k = 0; k < 2; ++k)
        load.emplace_back([&, k] { classify_loop(*c1, model, k, t, stop); });
      load.emplace_back([&] { bank_loop(*c1, a1[0], a1[1], "n1-", t, stop); });
      load.emplace_back([&] { bank_loop(*c2, a2[0], a2[1], "n2-", t, stop); });
      // Results flowing back before the kill: n1 has finished some calls.
      auto done_some = [&] {
        auto r = c1->call("imaging.pending", json{{"model", model}}.dump(), "admin", 10s);
        return r && t.calls_now() >= 10 && r->size() < t.calls_now();
      };
      if (!test::wait_until(done_some, 60s, "10 classify calls, some of them done")) {
        stop = true;
        for (auto& th : load)
          th.join();
        auto models = c1->call("comb.model.list", "{}", "admin", 10s);
        FAIL("no classify call done: " << t.calls.size() << " acknowledged; "
                                       << (models ? models->dump() : test::why(models)) << "\nn1:\n"
                                       << test::read_file(c.log(0)) << "\nn3:\n"
                                       << test::read_file(c.log(2)));
      }
      c.nodes[2]->kill(SIGKILL); // the compute node dies with calls in flight
      c.nodes[2].reset();
      // The state nodes serve on: money moves on both, and classify calls still commit (they
      // wait in n1's outbox for the compute process).
      auto calls = t.calls_now();
      auto bank = t.bank_now();
      CHECK(
        test::wait_until([&] { return t.calls_now() >= calls + 10 && t.bank_now() >= bank + 20; },
                         30s, "calls acknowledged while the compute node is down"));
      auto pending = c1->call("imaging.pending", json{{"model", model}}.dump(), "admin", 10s);
      REQUIRE_MESSAGE(pending, test::why(pending));
      CHECK_MESSAGE(!pending->empty(), "calls wait for the compute node");
      c.start(2, {"--spool", "none"});
      REQUIRE_MESSAGE(test::wait_for_line(c.log(2), "listening on", 40s),
                      test::read_file(c.log(2)));
      calls = t.calls_now();
      CHECK(test::wait_until([&] { return t.calls_now() >= calls + 10; }, 30s,
                             "calls acknowledged after the compute node is back"));
      stop = true;
      for (auto& th : load)
        th.join();
      CHECK_MESSAGE(t.error.empty(), t.error);
      // Every call is sent again to the restarted compute process and ends.
      json left;
      test::wait_until(
        [&] {
          auto r = c1->call("imaging.pending", json{{"model", model}}.dump(), "admin", 10s);
          if (r)
            left = *r;
          return r && r->empty();
        },
        90s, "no imaging call pending on n1");
      CHECK_MESSAGE(left.empty(), left.dump() << "\n" << test::read_file(c.log(0)));
      MESSAGE(t.calls.size() << " classify calls and " << t.bank_ok << " transfers acknowledged");
    }
    for (int i = 0; i < 3; ++i)
      if (c.nodes[i])
        CHECK(WIFEXITED(c.nodes[i]->kill(SIGTERM)));
    // n1's data folder: no acknowledged call lost, each with one applied result, though the
    // compute node died mid-way; the log is whole and replays to the folder's digest.
    auto data = c.data(0), log_dir = data + "/provenance";
    test::check_each_call_applied_once(data, log_dir, t.calls);
    test::check_verify(c.dir.path(), data, log_dir);
    test::check_replay_digest(c.dir.path(), data, log_dir);
  }
}
