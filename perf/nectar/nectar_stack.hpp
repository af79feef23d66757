// comb::test::nectar_stack: a Nectar deployment made of child processes on loopback, for
// traffic tests and perf_nectar: `comb compute`, `comb node` (provenance on, so that the log
// can be spooled), an anomaly model put into the node's store and activated as "waf", and
// `comb nectar serve` in front. Errors come back as caf::error naming the step and the
// child's log, so a test or a benchmark says what failed. Header only; not thread-safe.
#pragma once

#include "base/errc.hpp"
#include "node/client.hpp"
#include "perf/bench_env.hpp"
#include "tests/test_util.hpp"

#include <caf/actor_system.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace comb::test {

/// CPU seconds used so far by each process of a nectar_stack (and by the caller, which runs
/// the traffic generator): differences of two samples say where a run's CPU went.
struct stack_cpu {
  /// `rules`: the server's CRS worker processes (comb nectar rules-worker), running and ended.
  double server = 0, node = 0, compute = 0, self = 0, rules = 0;
  stack_cpu operator-(const stack_cpu& o) const {
    return {server - o.server, node - o.node, compute - o.compute, self - o.self,
            rules - o.rules};
  }
  double total() const { return server + node + compute + self + rules; }
};

/// CPU seconds of the descendants of `pid`: those running (each with its own reaped
/// children) and those it waited for (its cutime and cstime). The server's CRS workers are its
/// children, and each runs CRS in a child of its own.
inline double children_cpu_seconds(pid_t pid) {
  auto fields = [](const std::string& path) {
    std::vector<std::string> out;
    std::ifstream in{path};
    std::string line;
    if (!std::getline(in, line))
      return out;
    auto close = line.rfind(')');
    if (close == std::string::npos)
      return out;
    std::istringstream rest{line.substr(close + 2)};
    out.resize(3); // fields 1 and 2 (pid, comm) are not kept: out[k] is field k
    for (std::string f; rest >> f;)
      out.push_back(f);
    return out;
  };
  auto ticks = [](const std::vector<std::string>& f, int a, int b) {
    return static_cast<double>(std::stoull(f[a]) + std::stoull(f[b]));
  };
  // Every process's parent and own CPU (with its reaped children's).
  std::multimap<std::string, std::string> kids;
  std::map<std::string, double> own;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    auto name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    auto f = fields(e.path().string() + "/stat");
    if (f.size() <= 17)
      continue;
    kids.emplace(f[4], name);
    own[name] = ticks(f, 14, 15) + ticks(f, 16, 17);
  }
  double t = 0;
  auto self = fields("/proc/" + std::to_string(pid) + "/stat");
  if (self.size() > 17)
    t += ticks(self, 16, 17);
  std::vector<std::string> todo{std::to_string(pid)};
  while (!todo.empty()) {
    auto p = todo.back();
    todo.pop_back();
    auto [a, b] = kids.equal_range(p);
    for (auto it = a; it != b; ++it) {
      t += own[it->second];
      todo.push_back(it->second);
    }
  }
  return t / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// The comb binary the stack runs: $COMB_NECTAR_BINARY when set (perf_nectar's A/B of two
/// builds, alternating in one window), otherwise this build's.
inline std::string stack_binary() {
  if (auto env = std::getenv("COMB_NECTAR_BINARY"); env && *env)
    return env;
  return comb_binary();
}

class nectar_stack {
public:
  explicit nectar_stack(std::string dir) : dir_(std::move(dir)) {}

  std::string node_addr() const { return "127.0.0.1:" + std::to_string(node_port_); }
  std::string http_addr() const { return "127.0.0.1:" + std::to_string(http_port_); }
  std::string data_dir() const { return dir_ + "/node"; }
  std::string log_of(const std::string& name) const { return dir_ + "/" + name + ".log"; }

  /// Starts the compute process and the node, and makes `model_file` version 1 of "waf", active
  /// ("" skips the model: requests then wait for one, unlabeled).
  caf::error start_backend(const std::string& model_file,
                           std::vector<std::string> node_flags = {"--durability", "async"}) {
    compute_port_ = free_port();
    compute_ = std::make_unique<child_process>(
      std::vector<std::string>{stack_binary(), "compute", "--listen",
                               "127.0.0.1:" + std::to_string(compute_port_), "--threads", "1"},
      log_of("compute"));
    if (!wait_for_line(log_of("compute"), "listening on", std::chrono::seconds{60}, compute_.get()))
      return make_error(errc::unavailable, "comb compute did not start: " + log_of("compute"));
    node_port_ = free_port();
    std::vector<std::string> args{stack_binary(), "node",
                                  "--data",      data_dir(),
                                  "--listen",    node_addr(),
                                  "--compute",   "127.0.0.1:" + std::to_string(compute_port_)};
    args.insert(args.end(), node_flags.begin(), node_flags.end());
    node_args_ = args;
    if (auto err = launch_node())
      return err;
    if (model_file.empty())
      return {};
    if (auto err = run("model-put", {"model", "put", "--node", node_addr(), "--name", "waf",
                                     "--version", "1", "--file", model_file}))
      return err;
    return run("model-activate",
               {"model", "activate", "--node", node_addr(), "--name", "waf", "--version", "1"});
  }

  /// Kills the node with SIGKILL (its spooler with it, wherever it was) and starts it again
  /// on the same data, port and flags.
  caf::error restart_node() {
    if (node_)
      node_->kill(SIGKILL);
    return launch_node();
  }

  /// Stops the node with SIGTERM (its spooler makes a last pass) and waits for it.
  void stop_node() {
    if (node_) {
      node_->kill(SIGTERM);
      node_.reset();
    }
    client_.reset();
  }

  /// Starts `comb nectar serve` in front of the node (extra flags: --no-capture, ...).
  caf::error start_server(const std::vector<std::string>& extra = {}) {
    http_port_ = free_port();
    std::vector<std::string> args{stack_binary(), "nectar",   "serve",    "--node",
                                  node_addr(),   "--listen", http_addr()};
    args.insert(args.end(), extra.begin(), extra.end());
    server_log_ = log_of("serve-" + std::to_string(++servers_));
    server_ = std::make_unique<child_process>(args, server_log_);
    if (!wait_for_line(server_log_, "nectar: serving", std::chrono::seconds{60}, server_.get()))
      return make_error(errc::unavailable, "comb nectar serve did not start: " + server_log_);
    return {};
  }

  /// Stops the server (SIGTERM: it finishes its requests and hands what it holds to the
  /// node) and returns its log.
  std::string stop_server() {
    if (server_) {
      server_->kill(SIGTERM);
      server_.reset();
    }
    return read_file(server_log_);
  }

  /// CPU seconds each child (and this process) used so far; a child not running counts 0.
  stack_cpu cpu() const {
    auto of = [](const std::unique_ptr<child_process>& c) {
      return c ? std::max(0.0, perf::process_cpu_seconds(c->pid())) : 0.0;
    };
    return {of(server_), of(node_), of(compute_), std::max(0.0, perf::process_cpu_seconds(0)),
            server_ ? children_cpu_seconds(server_->pid()) : 0.0};
  }

  /// httplog.count of the node: {requests, labeled, unlabeled}.
  caf::expected<nlohmann::json> count(caf::actor_system& sys) {
    if (!client_) {
      auto c = runtime::client::connect(sys, {"127.0.0.1", static_cast<uint16_t>(node_port_)});
      if (!c)
        return std::move(c.error());
      client_ = std::make_unique<runtime::client>(*c);
    }
    return client_->call("httplog.count", "{}", "admin");
  }

  /// Copies the node's provenance log into the SQL store `sql` (a SQLite file).
  caf::error spool(const std::string& sql) {
    return run("spool", {"log", "spool", "--log", data_dir() + "/provenance", "--sql", sql});
  }

  /// Runs `comb ARGS...` to completion; an error with its output when it fails.
  caf::error run(const std::string& name, std::vector<std::string> args) {
    args.insert(args.begin(), stack_binary());
    child_process p{args, log_of(name)};
    int status = p.wait();
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
      return {};
    return make_error(errc::unavailable,
                      "comb " + args[1] + " " + args[2] + " failed: " + read_file(log_of(name)));
  }

private:
  caf::error launch_node() {
    auto log = log_of(node_starts_++ == 0 ? "node" : "node-" + std::to_string(node_starts_));
    node_ = std::make_unique<child_process>(node_args_, log);
    client_.reset();
    if (!wait_until([&] { return port_accepts(node_port_) || !node_->running(); },
                    std::chrono::seconds{60}, "the node to listen")
        || !node_->running())
      return make_error(errc::unavailable, "comb node did not start: " + read_file(log));
    return {};
  }

  std::string dir_;
  std::vector<std::string> node_args_;
  int node_starts_ = 0;
  int compute_port_ = 0, node_port_ = 0, http_port_ = 0;
  int servers_ = 0;
  std::string server_log_;
  std::unique_ptr<child_process> compute_, node_, server_;
  std::unique_ptr<runtime::client> client_;
};

} // namespace comb::test
