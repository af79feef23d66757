// The `comb` binary's subcommands. Each area adds its subcommands to the CLI11 app through
// one function declared here and defined in cli/<area>_cmd.cpp; main() calls them all.
#pragma once

#include <CLI/CLI.hpp>
#include <caf/error.hpp>

#include <string>

namespace comb::cli {

/// Prints "comb <cmd>: <error>" to stderr and ends the subcommand with exit code `code`.
[[noreturn]] void fail(const std::string& cmd, const caf::error& e, int code = 1);

/// The `comb nectar` group (serve, count, traffic, report), made by whichever of
/// cli/nectar_cmd.cpp and cli/nectar_traffic_cmd.cpp adds its subcommands first.
inline CLI::App* nectar_group(CLI::App& app) {
  auto found = app.get_subcommands([](CLI::App* a) { return a->check_name("nectar"); });
  if (!found.empty())
    return found.front();
  auto* g = app.add_subcommand("nectar", "Nectar, the social network on Comb");
  g->require_subcommand(1);
  return g;
}

/// The `comb cluster` group (up, status, down, verify), made by whichever of
/// cli/cluster_cmd.cpp and cli/cluster_verify_cmd.cpp adds its subcommands first.
inline CLI::App* cluster_group(CLI::App& app) {
  auto found = app.get_subcommands([](CLI::App* a) { return a->check_name("cluster"); });
  if (!found.empty())
    return found.front();
  auto* g = app.add_subcommand("cluster", "Run and check a cluster from a config file");
  g->require_subcommand(1);
  return g;
}

/// `comb cluster up|status|down` (cli/cluster_cmd.cpp).
void add_cluster_commands(CLI::App& app);

/// `comb cluster verify` (cli/cluster_verify_cmd.cpp): each stopped node's log checked and
/// replayed against its data folder.
void add_cluster_verify_command(CLI::App& app);

/// `comb demo`, `comb node`, `comb call`.
void add_node_commands(CLI::App& app);

/// `comb log dump|tail|verify|spool`, `comb replay`, `comb prov ...`.
void add_log_commands(CLI::App& app);

/// `comb compute`: the compute process (pieces, batching, built-in tasks).
void add_compute_commands(CLI::App& app);

/// `comb anomaly train | eval | score`: the HTTP anomaly detector (apps/anomaly).
void add_anomaly_commands(CLI::App& app);

/// `comb model put|list|get|activate`: the model store of a running node.
void add_model_commands(CLI::App& app);

/// `comb imaging load|classify|detect|train|results|make-detector|demo` (apps/imaging).
void add_imaging_commands(CLI::App& app);

/// `comb console`, `comb console add-user`: the web console over the SQL store (apps/console).
void add_console_commands(CLI::App& app);

/// `comb nectar serve`, `comb nectar count` (apps/nectar/server.hpp); they join the `nectar`
/// group if it was added first, or add it.
void add_nectar_commands(CLI::App& app);

/// `comb nectar traffic`, `comb nectar report` (apps/nectar/traffic.hpp, report.hpp); they
/// join the `nectar` group if it was added first, or add it.
void add_nectar_traffic_commands(CLI::App& app);

} // namespace comb::cli
