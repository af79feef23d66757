// Two-node loopback clusters for the node.cluster_* tests: a config file and
// `comb node --config F --name N` processes. Header only.
#pragma once

#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace comb::test {

/// Writes a two-node config to `file` and returns its path: n1 on 127.0.0.1:`p1` runs
/// `n1_parts`, n2 on `p2` runs `n2_parts` (TOML lists) of `partitions`; data folders in `dir`,
/// async durability; `cluster_lines` go into [cluster].
inline std::string pair_config(const std::string& file, const std::string& dir, int p1, int p2,
                               int partitions, const std::string& n1_parts,
                               const std::string& n2_parts, const std::string& cluster_lines = "") {
  std::ofstream{file} << "[cluster]\nname = 'two'\npartitions = " << partitions << "\n"
                      << cluster_lines << "[[node]]\nname = 'n1'\nlisten = '127.0.0.1:" << p1
                      << "'\ndata = '" << dir << "/n1'\npartitions = " << n1_parts << "\n"
                      << "durability = 'async'\n"
                      << "[[node]]\nname = 'n2'\nlisten = '127.0.0.1:" << p2 << "'\n"
                      << "data = '" << dir << "/n2'\npartitions = " << n2_parts << "\n"
                      << "durability = 'async'\n";
  return file;
}

/// Starts `comb node --config CONFIG --name NAME --spool none`, its output in `log`, and waits
/// until it listens.
inline std::unique_ptr<child_process> start_config_node(const std::string& config,
                                                        const std::string& name,
                                                        const std::string& log) {
  std::vector<std::string> argv{comb_binary(), "node",  "--config", config,
                                "--name",      name,    "--spool",  "none"};
  auto p = std::make_unique<child_process>(argv, log);
  if (!wait_for_line(log, "listening on", std::chrono::seconds{30}, p.get()) && !p->running()) {
    // Known open bug (stop note of 2026-12-05): about one start in five of a node that shares
    // a loopback cluster with another exits at once without a word (no log line, no core).
    // Until it is found, one more start, said on stderr so that it stays visible.
    std::fprintf(stderr, "start_config_node: %s exited before listening (log: '%s'); starting "
                         "it again\n",
                 name.c_str(), read_file(log).c_str());
    p = std::make_unique<child_process>(argv, log);
  }
  REQUIRE(wait_for_line(log, "listening on", std::chrono::seconds{30}, p.get()));
  return p;
}

} // namespace comb::test
