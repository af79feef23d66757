// comb::runtime::replay: rebuilds a database from a provenance log by re-executing the recorded
// procedure invocations, in lsn order, into a fresh data folder: the whole log gives the state
// of the original database (same digest), and --until gives the state at a past moment (time
// travel). Each re-executed transaction's row changes are compared with the recorded ones, so
// a procedure that is not deterministic is caught at the first divergence. A corrupt log is
// refused before anything is written.
#pragma once

#include "runtime/procedure_registry.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <limits>
#include <string>

namespace comb::runtime {

struct replay_options {
  std::string log_dir;
  /// A new (missing or empty) folder to build the database in.
  std::string into_dir;
  /// Stop after the last record with lsn <= until_lsn ...
  uint64_t until_lsn = std::numeric_limits<uint64_t>::max();
  /// ... and with a timestamp (ns since the epoch) <= until_ns.
  int64_t until_ns = std::numeric_limits<int64_t>::max();
  /// When not 0, stop right after this execution.
  uint64_t execution = 0;
  /// The (stopped) node's data folder the log belongs to, or empty: replay then refuses a log
  /// that ends before the lsn this database says it must reach, naming the missing lsns
  /// (provenance_recorder::check_log_end), unless it stops before them (--until).
  std::string source_data;
};

struct replay_report {
  uint64_t applied = 0;
  uint64_t skipped = 0;
  uint64_t last_lsn = 0;
  std::string digest;
};

/// Replays the log into a fresh database with `procs` and the runtime's services (see
/// runtime/pieces/services.hpp), as a node runs them.
caf::expected<replay_report> replay(const procedure_registry& procs, const replay_options& opts);

/// Parses an --until value: a plain number is an lsn; an ISO-8601 UTC time
/// ("2026-11-25T07:30:00Z", fractional seconds allowed) or "<n>ns" is a time.
caf::error parse_until(const std::string& text, replay_options& opts);

} // namespace comb::runtime
