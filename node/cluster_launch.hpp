// comb::runtime::cluster_launch: what `comb cluster up|status|down` does with a cluster
// config: start the nodes that are local to this host as background `comb node --config F
// --name N` processes (log in DATA.log, pid in DATA.pid, beside the data folder DATA), ask each node for its
// state, and stop them from their pid files. Free functions; each call is self-contained.
#pragma once

#include "node/cluster_config.hpp"

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace comb::runtime {

/// What happened to one node.
struct node_report {
  std::string node;
  bool ok = false;
  /// One line for people: "started, pid 123, 127.0.0.1:4301", or why not (with the log's
  /// last lines when it did not start).
  std::string detail;
};

/// True when `host` is an address of this machine (loopback, or one of its interfaces).
bool is_local_host(const std::string& host);

/// Starts every node of `cfg` whose listen host is local (all of them with `all_local`) as
/// `comb_binary node --config <config_path> --name N`, waits until each answers (at most
/// `wait` each). When one fails, the ones already started are stopped again, and the error
/// names the node and quotes its log. Nodes already running (their pid file's process) are
/// left alone and reported.
caf::expected<std::vector<node_report>> cluster_up(const cluster_config& cfg,
                                                   const std::string& config_path,
                                                   const std::string& comb_binary, bool all_local,
                                                   std::chrono::milliseconds wait);

/// Each node's state as JSON: name, address, roles, reachable, and when reachable what it
/// says of itself (partitions it runs, durability, peers, outbox, provenance, version, and
/// provenance_lag: last lsn written to its log against the last one spooled, and since when).
std::vector<nlohmann::json> cluster_status(caf::actor_system& sys, const cluster_config& cfg,
                                           std::chrono::milliseconds timeout);

/// Stops every node of `cfg` with a pid file here: SIGTERM, then SIGKILL after `bound`.
std::vector<node_report> cluster_down(const cluster_config& cfg, std::chrono::milliseconds bound);

} // namespace comb::runtime
