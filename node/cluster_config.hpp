// comb::runtime::cluster_config: a cluster described by a TOML file in cluster_configs/: the
// cluster's name, partition count, shared secret and TLS files, and its nodes (address, data
// folder, partitions, durability, roles, compute process). Everything is validated while
// parsing, before anything starts; errors name the file, the key and what is wrong. Plain
// value type.
#pragma once

#include "base/endpoint.hpp"
#include "node/node.hpp"
#include "runtime/tls.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace comb::runtime {

/// The roles a node may have. state: runs state partitions; compute: runs a compute process;
/// spooler: spools its provenance log into SQL; nectar: serves Nectar's site on
/// nectar_listen; console: serves the console on console_listen (over the cluster's spooled
/// SQLite store); gateway: the apps' HTTP front ends as a group (recorded for `comb cluster
/// status`).
const std::vector<std::string>& cluster_roles();

struct cluster_node {
  node_config node;
  /// What runs on the node (a subset of cluster_roles()).
  std::vector<std::string> roles{"state"};
  /// For compute nodes: where the compute process listens, and its backend (cpu, cuda, auto).
  std::optional<endpoint> compute_listen;
  std::string backend = "auto";
  /// For state nodes: the compute node whose process its function actors feed (empty: none).
  std::string compute;
  /// For nodes with the "nectar" / "console" role: where `comb node` serves Nectar's HTTP
  /// site and the console (both required with their role).
  std::optional<endpoint> nectar_listen;
  std::optional<endpoint> console_listen;
  /// `cpus`: the CPUs the node's process runs on (taskset's list, as `comb node --cpus`);
  /// empty: wherever it may.
  std::vector<int> cpus;

  bool has_role(const std::string& role) const;
};

struct cluster_config {
  std::string name = "comb";
  /// The file it was read from ("" when parsed from text).
  std::string file;
  /// Hash partitions of the whole cluster.
  uint32_t partitions = 4;
  /// The shared secret (from `secret` or read from `secret_file`); empty: none. Used only with
  /// TLS off: callers must prove it to a node (actors/gateway.hpp); with TLS the certificates
  /// are the credentials.
  std::string secret;
  /// The secret a client of this cluster proves ("" with TLS on, or none set).
  std::string client_secret() const { return tls.enabled() ? std::string{} : secret; }
  /// The bound of a call one node forwards to another (`forward_timeout`, seconds; 5 when
  /// not given).
  std::chrono::milliseconds forward_timeout{5000};
  /// The cluster's TLS files, absolute (resolved against the config file's folder) and
  /// checked to be readable; all empty: plain TCP.
  tls_config tls;
  std::vector<cluster_node> nodes;

  /// The node of that name, or nullptr.
  const cluster_node* find(const std::string& name) const;

  /// The node that runs partition `p` (nullptr when out of range).
  const cluster_node* owner_of(uint32_t p) const;

  /// What node `name` starts with: its own settings plus the peers (every other state node
  /// with its partitions) and, when it names one, its compute node's address. bad_config when
  /// there is no such node.
  caf::expected<node_config> node_config_for(const std::string& name) const;
};

/// Reads a cluster config file. Relative data folders are resolved against `base_dir`
/// (empty: the current directory); TLS and secret files against the file's own folder.
caf::expected<cluster_config> load_cluster_config(const std::string& path,
                                                  const std::string& base_dir = "");

/// Parses cluster config text (`origin` names it in errors; its folder resolves TLS files).
caf::expected<cluster_config> parse_cluster_config(const std::string& text,
                                                   const std::string& origin,
                                                   const std::string& base_dir = "");

} // namespace comb::runtime
