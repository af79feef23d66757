// comb::test::compute_child: a `comb compute` child process on a fixed loopback port, so that
// a test can kill it and start it again on the same port. Header only; not thread-safe.
#pragma once

#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

namespace comb::test {

class compute_child {
public:
  /// Starts `comb compute --listen 127.0.0.1:PORT --threads 2 EXTRA...` and waits until it
  /// listens (the test fails, with the child's log, when it does not within 30 s).
  explicit compute_child(std::vector<std::string> extra = {})
    : port_(free_port()), extra_(std::move(extra)) {
    start();
  }

  /// Starts the process (again), on the same port.
  void start() {
    using namespace std::chrono_literals;
    auto log = dir_.path() + "/compute-" + std::to_string(++starts_) + ".log";
    std::vector<std::string> argv{comb_binary(), "compute",
                                  "--listen",    "127.0.0.1:" + std::to_string(port_),
                                  "--threads",   "2"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    std::fflush(stdout);
    proc_ = std::make_unique<child_process>(argv, log);
    REQUIRE_MESSAGE(wait_for_line(log, "listening on", 30s, proc_.get()),
                    "comb compute did not start: " << read_file(log));
  }

  void kill() { proc_->kill(SIGKILL); }
  void signal(int sig) { proc_->signal(sig); }
  /// SIGSTOP, returning once the process has stopped (see child_process::stop).
  void stop() { REQUIRE_MESSAGE(proc_->stop(), "comb compute ended instead of stopping"); }
  uint16_t port() const { return static_cast<uint16_t>(port_); }

private:
  temp_dir dir_;
  int port_;
  std::vector<std::string> extra_;
  int starts_ = 0;
  std::unique_ptr<child_process> proc_;
};

} // namespace comb::test
