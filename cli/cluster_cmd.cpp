// `comb cluster up|status|down --config F`: starts the nodes of a cluster config that are
// local to this host, shows every node's state, and stops them (node/cluster_launch.hpp).
#include "cli/commands.hpp"

#include "base/errc.hpp"
#include "node/cluster_config.hpp"
#include "node/cluster_launch.hpp"
#include "runtime/system_config.hpp"

#include <caf/actor_system.hpp>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

namespace comb::cli {

namespace {

struct cluster_opts {
  std::string config;
  bool all_local = false;
  bool json = false;
  double wait = 60;
  double timeout = 3;
  double bound = 15;
};

runtime::cluster_config load(const cluster_opts& o, const std::string& cmd) {
  auto cc = runtime::load_cluster_config(o.config);
  if (!cc)
    fail(cmd, cc.error(), 2);
  return std::move(*cc);
}

void print(const std::vector<runtime::node_report>& rs) {
  for (auto& r : rs)
    std::cout << "  " << r.node << ": " << r.detail << "\n";
  std::cout << std::flush;
}

// "lsn 412 written, 400 spooled (12 behind, up to 0.8 s)", from node::provenance_lag.
std::string describe_lag(const nlohmann::json& lag) {
  auto written = std::to_string(lag.value("written_lsn", uint64_t{0}));
  if (!lag.contains("spooled_lsn") || lag["spooled_lsn"].is_null())
    return "lsn " + written + " written, not spooled by this node";
  std::ostringstream os;
  os << "lsn " << written << " written, " << lag.value("spooled_lsn", uint64_t{0}) << " spooled";
  if (lag.contains("lag_s") && lag["lag_s"].is_number()) {
    auto behind = lag.value("behind", uint64_t{0});
    if (behind == 0)
      os << " (caught up)";
    else
      os << " (" << behind << " behind, up to " << std::fixed << std::setprecision(1)
         << lag["lag_s"].get<double>() << " s)";
  } else {
    os << " (no spool pass yet)";
  }
  if (lag.contains("error"))
    os << " [spooler: " << lag.value("error", "") << "]";
  return os.str();
}

void run_up(const cluster_opts& o) {
  auto cc = load(o, "cluster up");
  auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  auto r = runtime::cluster_up(cc, o.config, self, o.all_local,
                               std::chrono::milliseconds{static_cast<int64_t>(o.wait * 1000)});
  if (!r)
    fail("cluster up", r.error());
  std::cout << "cluster " << cc.name << ": up (" << cc.partitions << " partitions)\n";
  print(*r);
}

void run_cluster_status(const cluster_opts& o) {
  auto cc = load(o, "cluster status");
  runtime::system_config cfg{2};
  if (auto err = cfg.set_tls(cc.tls))
    fail("cluster status", err, 2);
  caf::actor_system sys{cfg};
  auto rs = runtime::cluster_status(
    sys, cc, std::chrono::milliseconds{static_cast<int64_t>(o.timeout * 1000)});
  bool all = true;
  for (auto& j : rs)
    all = all && j.value("reachable", false);
  if (o.json) {
    std::cout
      << nlohmann::json{{"cluster", cc.name}, {"partitions", cc.partitions}, {"nodes", rs}}.dump(2)
      << std::endl;
  } else {
    std::cout << "cluster " << cc.name << ": " << cc.partitions << " partitions, " << rs.size()
              << " node(s)\n";
    for (auto& j : rs) {
      std::cout << "  " << j.value("name", "?") << " " << j.value("address", "?") << ": "
                << (j.value("reachable", false) ? "reachable" : "UNREACHABLE");
      if (j.contains("pid"))
        std::cout << ", pid " << j["pid"];
      std::string roles;
      for (auto& r : j["roles"])
        roles += (roles.empty() ? "" : ",") + r.get<std::string>();
      std::cout << ", roles " << roles << ", partitions "
                << j.value("owned", j.value("configured_partitions", std::string{"?"})) << ", "
                << j.value("durability", "?");
      if (j.contains("version"))
        std::cout << ", version " << j["version"].get<std::string>();
      if (j.contains("provenance") && j["provenance"].is_object())
        std::cout << ", provenance log " << j["provenance"].value("log", "");
      if (j.contains("provenance_lag") && j["provenance_lag"].is_object())
        std::cout << ", " << describe_lag(j["provenance_lag"]);
      if (j.contains("error"))
        std::cout << " (" << j.value("error", "") << ")";
      std::cout << "\n";
    }
    std::cout << std::flush;
  }
  if (!all)
    std::exit(3);
}

void run_down(const cluster_opts& o) {
  auto cc = load(o, "cluster down");
  auto rs = runtime::cluster_down(cc,
                                  std::chrono::milliseconds{static_cast<int64_t>(o.bound * 1000)});
  std::cout << "cluster " << cc.name << ": down\n";
  print(rs);
}

} // namespace

void add_cluster_commands(CLI::App& app) {
  auto o = std::make_shared<cluster_opts>();
  auto* cluster = cluster_group(app);
  auto* up = cluster->add_subcommand(
    "up", "Start every node of the file whose listen host is this host, in the background "
          "(log and pid file in each node's data folder); wait until each answers");
  auto* status = cluster->add_subcommand(
    "status", "Per node: reachable, partitions, roles, durability (exit 3 when one is not)");
  auto* down = cluster->add_subcommand(
    "down", "Stop the nodes started here: SIGTERM from their pid files, SIGKILL after a bound");
  for (auto* s : {up, status, down})
    s->add_option("--config", o->config, "Cluster config file")->required();
  up->add_flag("--all-local", o->all_local, "Start every node here, whatever its listen host");
  up->add_option("--wait", o->wait, "Seconds to wait for each node to answer")
    ->capture_default_str();
  status->add_flag("--json", o->json, "Print JSON");
  status->add_option("--timeout", o->timeout, "Seconds to wait for each node")
    ->capture_default_str();
  down->add_option("--bound", o->bound, "Seconds after SIGTERM before SIGKILL")
    ->capture_default_str();
  up->callback([o] { run_up(*o); });
  status->callback([o] { run_cluster_status(*o); });
  down->callback([o] { run_down(*o); });
}

} // namespace comb::cli
