// Errors the user must see (issue 16): with no compute process (no --compute, or one that is
// down), a function call is not left to retry in silence. A real `comb node` process: its log
// says why (rate-limited), `comb model list` shows the attempts and the last error,
// `comb node status` the compute connection's state, and after --compute-give-up the call
// fails with that error in its result row, so `comb model activate` exits non-zero naming it.
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <fstream>

using namespace comb;
using namespace std::chrono_literals;

namespace {

using test::run_comb;

// A node process without a compute process; `compute` names an address where none listens,
// or is empty (no --compute).
struct node_without_compute {
  test::temp_dir dir;
  int port = test::free_port();
  std::string addr = "127.0.0.1:" + std::to_string(port);
  std::unique_ptr<test::child_process> proc;

  explicit node_without_compute(const std::string& compute) {
    // Give-up after 15 s: long enough that model list and node status, each a process of its
    // own, still see the failing call on a loaded 2-core machine (4 s gave up before them).
    std::vector<std::string> argv{test::comb_binary(), "node", "--data",       dir.path() + "/data",
                                  "--listen",          addr,   "--durability", "async",
                                  "--compute-give-up", "15"};
    if (!compute.empty()) {
      argv.push_back("--compute");
      argv.push_back(compute);
    }
    proc = std::make_unique<test::child_process>(argv, log());
    REQUIRE(test::wait_for_line(log(), "listening on", 30s, proc.get()));
    std::ofstream{dir.path() + "/model.bin", std::ios::binary} << std::string(5000, 'm');
    auto put = run_comb({"model", "put", "--node", addr, "--name", "m", "--version", "1", "--file",
                         dir.path() + "/model.bin", "--raw"},
                        dir.path() + "/put.txt");
    CAPTURE(put.out);
    REQUIRE(put.rc == 0);
  }
  std::string log() const { return dir.path() + "/node.log"; }

  // comb model list's row of m version 1.
  nlohmann::json row() {
    auto r = run_comb({"model", "list", "--node", addr}, dir.path() + "/list.txt");
    REQUIRE(r.rc == 0);
    std::istringstream in{r.out};
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.value("name", "") == "m")
        return j;
    }
    return nullptr;
  }
};

// Activates m version 1 and checks everything the user sees until the call gives up.
void check_visible_failure(node_without_compute& n, const std::string& state,
                           const std::string& reason) {
  test::child_process activate{{test::comb_binary(), "model", "activate", "--node", n.addr,
                                "--name", "m", "--version", "1", "--timeout", "60"},
                               n.dir.path() + "/activate.txt"};
  // While it fails: model list shows the attempts and the last error, node status the
  // compute connection's state and the failing call.
  nlohmann::json row;
  REQUIRE(test::wait_until(
    [&] {
      row = n.row();
      return row.is_object() && row.value("attempts", 0) >= 1;
    },
    30s, "model list showing the activation's attempts"));
  CAPTURE(row.dump());
  CHECK(row.value("loaded", true) == false);
  CHECK(row.value("last_error", "").find(reason) != std::string::npos);
  auto status = run_comb({"node", "status", "--node", n.addr}, n.dir.path() + "/status.txt");
  CAPTURE(status.out);
  CHECK(status.rc == 0);
  CHECK(status.out.find("compute: " + state) != std::string::npos);
  CHECK(status.out.find("failing calls: 1") != std::string::npos);
  CHECK(status.out.find("model 'm' version 1") != std::string::npos);
  // After the bound the call fails: activate names the error, and exits non-zero.
  int st = activate.wait();
  auto out = test::read_file(n.dir.path() + "/activate.txt");
  CAPTURE(out);
  REQUIRE(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) != 0);
  CHECK(out.find("failed to load") != std::string::npos);
  CHECK(out.find("gave up after") != std::string::npos);
  CHECK(out.find(reason) != std::string::npos);
  // The result procedure recorded it in the row; the node's log said why.
  row = n.row();
  CAPTURE(row.dump());
  CHECK(row.value("load_error", "").find("gave up after") != std::string::npos);
  CHECK(!row.contains("attempts")); // no longer failing: given up
  auto log = test::read_file(n.log());
  CAPTURE(log);
  CHECK(log.find("cannot reach the compute process") != std::string::npos);
  CHECK(log.find("giving up") != std::string::npos);
  auto after = run_comb({"node", "status", "--node", n.addr}, n.dir.path() + "/status2.txt");
  CAPTURE(after.out);
  CHECK(after.out.find("failing calls: 0") != std::string::npos);
  CHECK(after.out.find("1 given up") != std::string::npos);
}

} // namespace

TEST_SUITE("node.compute_status") {
  TEST_CASE("no --compute: the activation fails visibly and gives up with the reason") {
    node_without_compute n{""};
    check_visible_failure(n, "none (none)", "no compute process");
  }

  TEST_CASE("a compute process that is down: unreachable, then the call gives up") {
    auto port = test::free_port();
    node_without_compute n{"127.0.0.1:" + std::to_string(port)};
    check_visible_failure(n, "unreachable (127.0.0.1:" + std::to_string(port) + ")", "");
  }
}
