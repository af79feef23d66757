// `comb node` stopped with SIGTERM at several moments: right after it parsed its flags, while
// its database and provenance log recover (with commits of a killed run to recover), and while
// it serves, sent to a thread that does not block it (a library's, started before main()).
// Each time it exits with status 0 (not 143, death by the signal), says "stopping (SIGTERM)"
// and then "stopped" last, and a restart finds every commit that was acknowledged. The
// start-up moments are sync points where the node sends itself SIGTERM
// (COMB_KILL_AT=node.start.*, COMB_KILL_SIGNAL=15; base/sync_point.hpp), so the signal comes
// exactly there.
#include "runtime/system_config.hpp"
#include "tests/client_util.hpp"
#include "tests/crash/crash_util.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <caf/actor_system.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace comb;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

/// `comb node` on `data` and 127.0.0.1:`port` (sync durability, provenance and spooling on),
/// its output in `log`; with `point`, it sends itself SIGTERM when it reaches that sync point.
std::unique_ptr<test::child_process> start_node(const std::string& data, int port,
                                                const std::string& log,
                                                const std::string& point = "") {
  auto argv = test::node_argv(data, port);
  if (!point.empty())
    argv.insert(argv.begin(), {"/usr/bin/env", "COMB_KILL_AT=" + point,
                               "COMB_KILL_SIGNAL=" + std::to_string(SIGTERM)});
  return std::make_unique<test::child_process>(argv, log);
}

/// How `status` ended, in words, for messages.
std::string ended(int status) {
  if (status == -1)
    return "still running after the bound";
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status));
  return "exit status " + std::to_string(WEXITSTATUS(status));
}

/// The node of `p` ended with status 0, stopped on SIGTERM, and "stopped" is its last line.
void check_clean_stop(test::child_process& p, const std::string& log) {
  int status = test::wait_exit(p, 60s);
  auto out = test::read_file(log);
  CHECK_MESSAGE((status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0), ended(status)
                                                                                   << "\n"
                                                                                   << out);
  CHECK_MESSAGE(out.find(": stopping (SIGTERM)") != std::string::npos, out);
  auto last = out.substr(out.rfind('\n', out.size() - 2) + 1);
  CHECK_MESSAGE(last.find(": stopped") != std::string::npos, out);
}

/// Opens `n` accounts of 100 + i through a node on `port` (its output in `log`); all
/// acknowledged.
void open_accounts(caf::actor_system& sys, int port, const std::string& log, int n) {
  auto c = test::connect_retry(sys, port);
  REQUIRE_MESSAGE(c, test::why(c) << "\n" << test::read_file(log));
  for (int i = 0; i < n; ++i) {
    auto r = c->call("bank.open",
                     json{{"account", "a" + std::to_string(i)}, {"balance", 100 + i}}.dump(),
                     "admin");
    REQUIRE_MESSAGE(r, test::why(r));
  }
}

/// A node started on `data` holds the `n` accounts of open_accounts(), then stops cleanly.
void check_accounts(caf::actor_system& sys, const std::string& data, const std::string& log,
                    int n) {
  int port = test::free_port();
  auto node = start_node(data, port, log);
  auto c = test::connect_retry(sys, port);
  REQUIRE_MESSAGE(c, test::why(c) << "\n" << test::read_file(log));
  for (int i = 0; i < n; ++i) {
    auto r = c->call("bank.balance", json{{"account", "a" + std::to_string(i)}}.dump(), "admin");
    REQUIRE_MESSAGE(r, test::why(r));
    CHECK_MESSAGE((*r)["balance"] == 100 + i, r->dump());
  }
  node->signal(SIGTERM);
  check_clean_stop(*node, log);
}

/// The threads of `pid` other than its main thread that do not block SIGTERM (SigBlk of
/// /proc/PID/task/TID/status): threads libraries started before main() (OpenBLAS's pool).
std::vector<pid_t> threads_taking_sigterm(pid_t pid) {
  std::vector<pid_t> out;
  for (auto& t : std::filesystem::directory_iterator{"/proc/" + std::to_string(pid) + "/task"}) {
    auto tid = static_cast<pid_t>(std::stol(t.path().filename().string()));
    std::ifstream in{t.path() / "status"};
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("SigBlk:", 0) == 0 && tid != pid
          && (std::stoull(line.substr(7), nullptr, 16) & (1ull << (SIGTERM - 1))) == 0)
        out.push_back(tid);
  }
  return out;
}

/// Whether this build has sync points (the start-up cases need them); says so when not.
bool have_sync_points() {
#ifdef COMB_SYNC_POINTS
  return true;
#else
  MESSAGE("skipped: this build has no sync points (COMB_SYNC_POINTS=OFF)");
  return false;
#endif
}

} // namespace

TEST_SUITE("node.stop_signal") {
  TEST_CASE("SIGTERM right after the flags are parsed: the node starts, then stops cleanly") {
    if (!have_sync_points())
      return;
    test::temp_dir dir;
    int port = test::free_port();
    auto log = dir.path() + "/node.log";
    auto node = start_node(dir.path() + "/data", port, log, "node.start.begin");
    check_clean_stop(*node, log);
  }

  TEST_CASE("SIGTERM while the database and log recover: a clean stop, nothing committed lost") {
    if (!have_sync_points())
      return;
    test::temp_dir dir;
    auto data = dir.path() + "/data";
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    // Commits of a run killed with SIGKILL, for the next start to recover.
    int port = test::free_port();
    auto first = start_node(data, port, dir.path() + "/first.log");
    open_accounts(sys, port, dir.path() + "/first.log", 20);
    first->kill(SIGKILL);
    auto log = dir.path() + "/recovering.log";
    auto node = start_node(data, test::free_port(), log, "node.start.recovery");
    check_clean_stop(*node, log);
    check_accounts(sys, data, dir.path() + "/after.log", 20);
  }

  TEST_CASE("SIGTERM while serving, on a thread that does not block it: a clean stop, nothing "
            "lost") {
    test::temp_dir dir;
    auto data = dir.path() + "/data";
    runtime::system_config cfg{2};
    caf::actor_system sys{cfg};
    int port = test::free_port();
    auto log = dir.path() + "/node.log";
    auto node = start_node(data, port, log);
    open_accounts(sys, port, log, 20);
    // The kernel gives a process's SIGTERM to any thread that does not block it. Such a
    // thread (OpenBLAS starts its pool before main() runs) must pass it on, not die of it:
    // sent to that thread alone here, so that it is the one that takes it.
    auto takers = threads_taking_sigterm(node->pid());
    if (takers.empty()) {
      MESSAGE("no thread of the node leaves SIGTERM unblocked: the signal goes to the process");
      node->signal(SIGTERM);
    } else {
      REQUIRE(::syscall(SYS_tgkill, node->pid(), takers.front(), SIGTERM) == 0);
    }
    check_clean_stop(*node, log);
    check_accounts(sys, data, dir.path() + "/after.log", 20);
  }
}
