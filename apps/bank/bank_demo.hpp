// comb::apps::bank::run_demo: the demo's workload on a running node: opens the accounts it
// lacks, runs a burst of concurrent transfers from several client threads through the node,
// and reads the total back, so that `comb demo` shows a conserved sum. Blocks until done; uses
// its own threads, joined before it returns.
#pragma once

#include "node/node.hpp"

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

namespace comb::apps::bank {

struct demo_options {
  int accounts = 100;
  int64_t opening_balance = 1000;
  int threads = 8;
  int transfers_per_thread = 250;
};

struct demo_report {
  int accounts = 0;
  /// Accounts this run opened (the others existed from an earlier run).
  int opened = 0;
  /// Client threads that sent the transfers.
  int clients = 0;
  int committed = 0;
  int refused = 0;
  double seconds = 0;
  /// bank.total's reply: {"total": ..., "accounts": ...}.
  nlohmann::json total;
  /// True when the total is accounts * opening_balance.
  bool conserved = false;
};

/// Runs the workload. Errors: a failure to open an account (other than already_exists) or
/// to read the total.
caf::expected<demo_report> run_demo(runtime::node& n, const demo_options& opts = {});

} // namespace comb::apps::bank
