// `comb cluster verify --config F`: for each node of a cluster config whose data folder is on
// this host, with the node stopped: check its provenance log (every record, and that it ends
// where the node's database says it must), replay it into a fresh folder and compare the
// replayed state's digest with the data folder's. One line per node; exit 1 when any node
// fails. Each node has its own log and lsns, so each is checked on its own.
#include "cli/commands.hpp"

#include "apps/apps.hpp"
#include "base/errc.hpp"
#include "node/cluster_config.hpp"
#include "runtime/provenance/provenance_recorder.hpp"
#include "runtime/provenance/replay.hpp"
#include "storage/database.hpp"
#include "storage/provenance_log.hpp"

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>

namespace comb::cli {

namespace {

struct verify_opts {
  std::string config;
  std::vector<std::string> names;
  std::string provenance = "provenance"; // the log folder inside each data folder
};

caf::expected<std::string> data_digest(const std::string& data) {
  storage::options so;
  so.create_if_missing = false;
  so.read_only = true;
  so.keep_wal_seconds = runtime::provenance_recorder::keep_wal_seconds;
  auto db = storage::database::open(data, so);
  if (!db)
    return std::move(db.error());
  return (*db)->digest();
}

// One node: "ok: ..." or the first problem, as an error.
caf::expected<std::string> verify_node(const runtime::cluster_node& n, const std::string& log,
                                       const runtime::procedure_registry& procs) {
  auto& data = n.node.data_dir;
  auto st = storage::verify_log(log);
  if (!st)
    return std::move(st.error());
  storage::options so;
  so.create_if_missing = false;
  so.read_only = true;
  so.keep_wal_seconds = runtime::provenance_recorder::keep_wal_seconds;
  {
    auto db = storage::database::open(data, so);
    if (!db)
      return std::move(db.error());
    auto end = runtime::provenance_recorder::check_log_end(**db, log, st->last_lsn);
    if (!end)
      return std::move(end.error());
    if (!end->complete())
      return make_error(errc::corrupt_data, end->describe());
  }
  auto before = data_digest(data);
  if (!before)
    return std::move(before.error());
  auto into = std::filesystem::temp_directory_path()
              / ("comb-verify-" + n.node.name + "-" + std::to_string(std::random_device{}()));
  runtime::replay_options ro;
  ro.log_dir = log;
  ro.into_dir = into.string();
  ro.source_data = data;
  auto rep = runtime::replay(procs, ro);
  std::error_code ec;
  std::filesystem::remove_all(into, ec);
  if (!rep)
    return std::move(rep.error());
  if (rep->digest != *before)
    return make_error(errc::corrupt_data, "replaying " + std::to_string(rep->applied)
                                            + " invocation(s) gives digest " + rep->digest
                                            + ", the data folder has " + *before);
  return std::to_string(st->records) + " records, lsn " + std::to_string(st->first_lsn) + ".."
         + std::to_string(st->last_lsn) + "; replayed " + std::to_string(rep->applied)
         + " invocation(s): digest " + rep->digest + " = the data folder's";
}

void run_verify(const verify_opts& o) {
  auto cc = runtime::load_cluster_config(o.config);
  if (!cc)
    fail("cluster verify", cc.error(), 2);
  for (auto& name : o.names)
    if (!cc->find(name))
      fail("cluster verify",
           make_error(errc::bad_config, o.config + ": no node named '" + name + "'"), 2);
  runtime::procedure_registry procs;
  apps::register_all(procs);
  int failed = 0, checked = 0;
  for (auto& n : cc->nodes) {
    auto& name = n.node.name;
    if (!o.names.empty() && std::find(o.names.begin(), o.names.end(), name) == o.names.end())
      continue;
    auto& data = n.node.data_dir;
    auto log = data + "/" + o.provenance;
    if (!std::filesystem::exists(data)) {
      std::cout << name << ": skipped: no data folder " << data << " on this host\n";
      continue;
    }
    if (!std::filesystem::exists(log)) {
      std::cout << name << ": skipped: no provenance log " << log
                << (std::count(n.roles.begin(), n.roles.end(), "state")
                      ? ""
                      : " (it runs no state partitions)")
                << "\n";
      continue;
    }
    ++checked;
    auto r = verify_node(n, log, procs);
    if (r) {
      std::cout << name << ": ok: " << *r << "\n";
    } else {
      ++failed;
      std::cout << name << ": FAILED: " << describe(r.error()) << "\n";
    }
  }
  std::cout << checked << " node(s) checked, " << failed << " failed\n" << std::flush;
  if (failed > 0)
    throw CLI::RuntimeError(1);
}

} // namespace

void add_cluster_verify_command(CLI::App& app) {
  auto* cluster = cluster_group(app);
  auto o = std::make_shared<verify_opts>();
  auto* v = cluster->add_subcommand(
    "verify", "For each stopped node of the config on this host: check its provenance log, "
              "replay it and compare the digest with its data folder (one line per node)");
  v->add_option("--config", o->config, "The cluster config (cluster_configs/*.toml)")->required();
  v->add_option("--name", o->names, "Only these nodes (repeatable)");
  v->add_option("--provenance", o->provenance, "The log folder inside each data folder")
    ->capture_default_str();
  v->callback([o] { run_verify(*o); });
}

} // namespace comb::cli
