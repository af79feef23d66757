// `comb nectar traffic` and `comb nectar report`: flags and printing over apps/nectar's
// traffic generator and report (apps/nectar/traffic.hpp, report.hpp). They join the `nectar`
// command group when it exists (cli/nectar_cmd.cpp), or make it.
#include "cli/commands.hpp"

#include "apps/nectar/report.hpp"
#include "apps/nectar/traffic.hpp"

#include <iostream>
#include <memory>

namespace comb::cli {

void add_nectar_traffic_commands(CLI::App& app) {
  auto* nectar = nectar_group(app);

  auto o = std::make_shared<nectar::traffic_options>();
  auto* t = nectar->add_subcommand(
    "traffic", "Drive a Nectar server with benign sessions mixed with attacks, open loop, "
               "writing each request's true class to a truth file");
  t->add_option("--target", o->target, "HOST:PORT of the Nectar server")->capture_default_str();
  t->add_option("--rate", o->rate, "Requests per second (open loop)")->capture_default_str();
  t->add_option("--duration", o->duration_s, "Seconds of sending")->capture_default_str();
  t->add_option("--attack-share", o->attack_share, "Fraction of requests that are attacks")
    ->capture_default_str();
  t->add_option("--seed", o->seed, "Random seed (the class of each request follows from it)")
    ->capture_default_str();
  t->add_option("--truth", o->truth_file,
                "JSON-lines file: trace id, class, family, method, path "
                "and status of every request sent");
  t->add_option("--payloads", o->payload_dir,
                "Payload folder (attacks/<family>.txt, benign/<kind>.txt); default: "
                  + nectar::default_payload_dir());
  t->add_option("--connections", o->connections, "Client threads, one connection each")
    ->capture_default_str();
  t->add_option("--timeout", o->timeout_s, "Seconds to wait for a response")->capture_default_str();
  t->add_flag("--log-in-first", o->log_in_first,
              "Register every simulated browser before the clock starts, so that the timed "
              "traffic comes from users already logged in (warm-up requests go to the truth "
              "file, not into the rates)");
  t->add_flag("--allow-remote", o->allow_remote,
              "Allow a target off the loopback interface (attacks go there)");
  t->callback([o] {
    auto dir = o->payload_dir.empty() ? nectar::default_payload_dir() : o->payload_dir;
    auto payloads = nectar::payload_lists::load(dir);
    if (!payloads)
      fail("nectar traffic", payloads.error(), 2);
    auto stats = nectar::run_traffic(*o, *payloads);
    if (!stats)
      fail("nectar traffic", stats.error(), 2);
    std::cout << nectar::to_string(*stats);
    if (!o->truth_file.empty())
      std::cout << "truth: " << o->truth_file << "\n";
  });

  auto sql = std::make_shared<std::string>();
  auto truth = std::make_shared<std::string>();
  auto* r = nectar->add_subcommand(
    "report", "Precision, recall, F1 and FP rate of the rule label, the model label and their "
              "OR on a traffic run, from its truth file and the spooled store");
  r->add_option("--sql", *sql, "The SQL store the node's log was spooled into (comb log spool)")
    ->required();
  r->add_option("--truth", *truth, "The truth file of `comb nectar traffic`")->required();
  r->callback([sql, truth] {
    auto rep = nectar::make_report(*sql, *truth);
    if (!rep)
      fail("nectar report", rep.error(), 2);
    std::cout << nectar::to_string(*rep);
    if (rep->not_captured + rep->not_labeled > 0)
      throw CLI::RuntimeError(1);
  });
}

} // namespace comb::cli
