// Helpers shared by the crash matrices (tests/crash/): running the comb binary to its end,
// waiting for a node that kills itself at a sync point, and the checks every matrix makes of
// a data folder after the restart (the log verifies against the database, and replaying it
// gives the database's digest).
#pragma once

#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <sys/wait.h>

namespace comb::test {

/// `comb node` on `data` at 127.0.0.1:`port`, sync durability, 2 partitions: the node the
/// crash tests kill and restart.
inline std::vector<std::string> node_argv(const std::string& data, int port) {
  return {comb_binary(),
          "node",
          "--data",
          data,
          "--listen",
          "127.0.0.1:" + std::to_string(port),
          "--durability",
          "sync",
          "--partitions",
          "2"};
}

/// The wait status of `p` once it ends, or -1 when it runs past `timeout`.
inline int wait_exit(child_process& p, std::chrono::milliseconds timeout) {
  int status = -1;
  wait_until([&] { return ::waitpid(p.pid(), &status, WNOHANG) == p.pid(); }, timeout,
             "the node to end");
  return status;
}

/// True when `status` says the process killed itself with SIGKILL (at its sync point).
inline bool killed_at_point(int status) {
  return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

/// `comb log verify --data` finds the log of `data` whole (files of the run go to `dir`).
inline void check_verify(const std::string& dir, const std::string& data,
                         const std::string& log_dir) {
  auto [vrc, vout] = run_comb({"log", "verify", "--log", log_dir, "--data", data},
                              dir + "/verify.txt");
  CHECK_MESSAGE(vrc == 0, vout);
  CHECK_MESSAGE(vout.rfind("ok: ", 0) == 0, vout);
}

/// Replaying the log of `data` gives the digest `comb digest` gives of `data`.
inline void check_replay_digest(const std::string& dir, const std::string& data,
                                const std::string& log_dir) {
  auto [rrc, rout] = run_comb(
    {"replay", "--log", log_dir, "--into", dir + "/replayed", "--data", data}, dir + "/replay.txt");
  REQUIRE_MESSAGE(rrc == 0, rout);
  auto [drc, dout] = run_comb({"digest", "--data", data}, dir + "/digest.txt");
  REQUIRE_MESSAGE(drc == 0, dout);
  auto digest_line = [](const std::string& out) {
    auto at = out.find("digest ");
    return at == std::string::npos ? std::string{"(none)"}
                                   : out.substr(at, out.find('\n', at) - at);
  };
  CHECK_MESSAGE(digest_line(rout) == digest_line(dout), rout << "\n" << dout);
}

} // namespace comb::test
