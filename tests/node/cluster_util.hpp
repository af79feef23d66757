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

#include <sys/wait.h>

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

/// How a child's wait status ended, in words (exit 127: the exec failed, e.g. the binary was
/// being relinked; "killed by signal N": a signal or crash, which comb reports in its log).
inline std::string exit_text(int status) {
  if (WIFSIGNALED(status))
    return "killed by signal " + std::to_string(WTERMSIG(status));
  return "exit status " + std::to_string(WEXITSTATUS(status));
}

/// Starts `comb node --config CONFIG --name NAME --spool none`, its output in `log` (written
/// afresh), and waits until it listens.
inline std::unique_ptr<child_process> start_config_node(const std::string& config,
                                                        const std::string& name,
                                                        const std::string& log) {
  std::vector<std::string> argv{comb_binary(), "node", "--config", config,
                                "--name",      name,   "--spool",  "none"};
  for (int start = 1;; ++start) {
    // A log left by an earlier run of the node must not say "listening on" for this one.
    std::remove(log.c_str());
    auto p = std::make_unique<child_process>(argv, log);
    int status = 0;
    bool exited = false;
    wait_until(
      [&] {
        if (read_file(log).find("listening on") != std::string::npos)
          return true;
        exited = p->pid() <= 0 || ::waitpid(p->pid(), &status, WNOHANG) == p->pid();
        return exited;
      },
      std::chrono::seconds{30}, "'listening on' in " + log);
    if (!exited) {
      REQUIRE_MESSAGE(read_file(log).find("listening on") != std::string::npos,
                      name << " did not listen within 30 s: " << read_file(log));
      return p;
    }
    auto why = p->pid() <= 0 ? std::string{"fork failed"} : exit_text(status);
    // Known open bug (stop note of 2026-12-05): now and then a node of a loopback cluster
    // ended before it listened, without a word. comb now prints a first line, the reason of
    // every early exit and any fatal signal; the exit status here says the rest. Until the
    // cause is known, one more start, said on stderr so that it stays visible.
    std::fprintf(stderr, "start_config_node: %s ended before listening (%s; log: '%s')%s\n",
                 name.c_str(), why.c_str(), read_file(log).c_str(),
                 start == 1 ? "; starting it again" : "");
    REQUIRE_MESSAGE(start == 1, name << " ended before listening twice (" << why << ")");
  }
}

} // namespace comb::test
