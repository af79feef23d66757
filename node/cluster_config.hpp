// comb::runtime::cluster_config: a cluster described by a TOML file in cluster_configs/: the
// nodes, their addresses, data folders, partitions, durability and roles. Parsing reports the
// file, the key and what is wrong. Plain value type.
#pragma once

#include "node/node.hpp"

#include <caf/expected.hpp>

#include <string>
#include <vector>

namespace comb::runtime {

struct cluster_node {
  node_config node;
  /// What runs on the node: "state", "compute", "spooler".
  std::vector<std::string> roles{"state"};
  /// For compute nodes: where the compute process listens.
  std::string compute_listen;
};

struct cluster_config {
  std::string name = "comb";
  std::vector<cluster_node> nodes;

  /// The node of that name, or nullptr.
  const cluster_node* find(const std::string& name) const;
};

/// Reads a cluster config file. Relative data folders are resolved against `base_dir`
/// (empty: the current directory).
caf::expected<cluster_config> load_cluster_config(const std::string& path,
                                                  const std::string& base_dir = "");

/// Parses cluster config text (`origin` names it in errors).
caf::expected<cluster_config> parse_cluster_config(const std::string& text,
                                                   const std::string& origin,
                                                   const std::string& base_dir = "");

} // namespace comb::runtime
