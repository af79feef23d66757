// comb::test::netns_cluster: the three-node cluster that cluster tests run across network
// namespaces (netns.hpp): n1 and n2 state nodes (partitions 0-3 and 4-7 of 8), n3 a compute
// node, each a `comb node --config F --name N` on a host of its own, and a fourth host for the
// clients. It writes the config (with a test's own lines for [cluster] and for the state
// nodes), starts and restarts nodes (one log per start) and connects clients to them. Header
// only; not thread-safe.
#pragma once

#include "base/errc.hpp"
#include "node/client.hpp"
#include "runtime/procedure_registry.hpp"
#include "tests/support/netns.hpp"
#include "tests/test_util.hpp"

#include <caf/actor_system.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace comb::test {

struct netns_cluster {
  temp_dir dir;
  netns_hosts hosts{4};
  std::string config = dir.path() + "/cluster.toml";
  std::unique_ptr<netns_process> nodes[3];
  int starts[3] = {0, 0, 0};

  /// Node i's gateway (i from 0: n1, n2, n3).
  endpoint address(int i) const {
    return {hosts.address(static_cast<size_t>(i)), static_cast<uint16_t>(4301 + i)};
  }
  std::string data(int i) const { return dir.path() + "/n" + std::to_string(i + 1); }
  /// The log of node i's latest start.
  std::string log(int i) const {
    return dir.path() + "/n" + std::to_string(i + 1) + "-" + std::to_string(starts[i]) + ".log";
  }

  /// Writes the config: `cluster_lines` go into [cluster], `state_lines` into n1's and n2's
  /// tables (roles, compute, ...); both sync durability.
  void write_config(const std::string& cluster_lines, const std::string& state_lines) const {
    std::ofstream f{config};
    f << "[cluster]\nname = \"netns\"\npartitions = 8\n" << cluster_lines;
    for (int i = 0; i < 2; ++i)
      f << "\n[[node]]\nname = \"n" << i + 1 << "\"\nlisten = \"" << address(i).to_string()
        << "\"\ndata = \"" << data(i) << "\"\npartitions = ["
        << (i == 0 ? "0, 1, 2, 3" : "4, 5, 6, 7") << "]\ndurability = \"sync\"\n"
        << state_lines;
    f << "\n[[node]]\nname = \"n3\"\nlisten = \"" << address(2).to_string() << "\"\ndata = \""
      << data(2) << "\"\nroles = [\"compute\"]\ncompute_listen = \"" << hosts.address(2)
      << ":4313\"\nbackend = \"cpu\"\n";
  }

  /// Starts node i on its host with `args` after `--name N`.
  void start(int i, const std::vector<std::string>& args) {
    ++starts[i];
    std::vector<std::string> argv{comb_binary(), "node",   "--config",
                                  config,        "--name", "n" + std::to_string(i + 1)};
    argv.insert(argv.end(), args.begin(), args.end());
    nodes[i] = hosts.spawn(static_cast<size_t>(i), argv, log(i));
  }

  /// Writes the config of n1 and n2 as state nodes feeding n3's compute process
  /// (`cluster_lines` in [cluster]) and starts n3, n2 and n1 without spooling; "" once n3
  /// listens, else n3's log.
  std::string start_compute_cluster(const std::string& cluster_lines = "") {
    write_config(cluster_lines, "roles = [\"state\"]\ncompute = \"n3\"\n");
    for (int i = 2; i >= 0; --i)
      start(i, {"--spool", "none"});
    if (wait_for_line(log(2), "listening on", std::chrono::seconds{40}))
      return {};
    return "n3 did not start:\n" + read_file(log(2));
  }

  /// Stops node i cleanly (SIGTERM); its exit status (0 when it was not running).
  int stop(int i) {
    if (!nodes[i])
      return 0;
    int st = nodes[i]->kill(SIGTERM);
    nodes[i].reset();
    return st;
  }
};

/// The k-th (from 0) name `prefix` + i whose partition node `node` (0: n1, 1: n2) holds, by
/// the hash routing uses: n1 runs partitions 0-3 of 8, n2 4-7.
inline std::string name_on(const std::string& prefix, int node, int k = 0) {
  for (int i = 0;; ++i) {
    auto name = prefix + std::to_string(i);
    if (static_cast<int>(runtime::partition_hash(name) % 8 / 4) == node && k-- == 0)
      return name;
  }
}

/// Connects to node i of `c` once it accepts clients (it may be starting).
inline caf::expected<runtime::client> connect_node(
  caf::actor_system& sys, const netns_cluster& c, int i,
  std::chrono::milliseconds within = std::chrono::seconds{40}) {
  caf::expected<runtime::client> r = make_error(errc::unavailable, "not tried");
  wait_until(
    [&] {
      r = runtime::client::connect(sys, c.address(i), std::chrono::seconds{5});
      return static_cast<bool>(r);
    },
    within, "node n" + std::to_string(i + 1) + " accepting clients");
  return r;
}

} // namespace comb::test
