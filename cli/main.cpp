// Entry point of the `comb` binary: builds the CLI11 command tree and runs the chosen command.
#include "cli/commands.hpp"

#include "apps/apps.hpp"
#include "base/errc.hpp"

#include <iostream>

namespace comb::cli {

void fail(const std::string& cmd, const caf::error& e, int code) {
  std::cerr << "comb " << cmd << ": " << describe(e) << "\n";
  throw CLI::RuntimeError(code);
}

} // namespace comb::cli

int main(int argc, char** argv) {
  CLI::App app{"comb: an actor-based runtime with transactional state, provenance and ML", "comb"};
  comb::apps::register_runners();
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  comb::cli::add_node_commands(app);
  comb::cli::add_log_commands(app);
  comb::cli::add_compute_commands(app);
  comb::cli::add_model_commands(app);
  comb::cli::add_anomaly_commands(app);
  comb::cli::add_imaging_commands(app);
  comb::cli::add_console_commands(app);
  comb::cli::add_cluster_commands(app);
  comb::cli::add_cluster_verify_command(app);
#ifdef COMB_HAVE_NECTAR_SERVER
  comb::cli::add_nectar_commands(app);
#endif
#ifdef COMB_HAVE_NECTAR_TRAFFIC
  comb::cli::add_nectar_traffic_commands(app);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
