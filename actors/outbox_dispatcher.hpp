// comb::actors::outbox_dispatcher: sends the calls that stored procedures committed to the
// outbox (runtime/outbox.hpp) to a pool of function actors, and hands each result (or final
// error) to the call's result procedure through the node's router. A call is sent as soon as
// the transaction that made it commits; the dispatcher also polls the outbox, so calls
// committed before a crash are sent again after the restart; result procedures apply a
// result at most once, so a call that is sent twice still takes effect exactly once. The
// dispatcher reads the outbox directly but never writes the database: all writes are made by
// the result procedures, in transactions. When a call fails with errc::model_not_loaded (the
// compute process restarted, or unloaded that version), the dispatcher reads the version's
// bytes from the database (model_store::read_version; a call pinned to version 0 reloads the
// active version), sends one reload_model task per (model, version) while the calls that need
// it wait, then sends them again; a call waits for at most 3 reloads, then the error is its
// final result. Reloads are recorded as "model_reload" messages. A call that cannot reach the
// compute process (it is down, or the node has none) is tried again every retry_pause; each
// failure is counted against the call (attempts, last error: the node's status shows them),
// printed to the node's log at most once per log_every, and after give_up_after the error is
// the call's final result, which its result procedure records. One per node; talk to it by
// messages.
#pragma once

#include "actors/function_actor.hpp"
#include "runtime/router.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <cstdint>

namespace comb::storage {
class database;
} // namespace comb::storage

namespace comb::actors {

struct dispatcher_config {
  /// How the function actors reach the compute process.
  function_config function;
  /// Number of function actors.
  uint32_t functions = 4;
  /// Calls in flight at once, and their payload bytes (at least one call is always sent).
  /// Large calls need several in flight to keep the path busy: with 16 MiB, 8 MiB calls
  /// moved 0.9-1.0 GB/s, with 64 MiB 1.2-1.35 GB/s (perf/pieces, 2 cores).
  uint32_t max_in_flight = 1024;
  size_t max_in_flight_bytes = size_t{64} << 20;
  /// Outbox poll interval after a poll found calls / found none. Calls are sent as soon as
  /// their transaction commits (runtime::outbox::set_listener); polls find the calls made
  /// before a restart and those to send again, and are cheap to leave rare.
  std::chrono::milliseconds poll_busy{5};
  std::chrono::milliseconds poll_idle{50};
  /// A poll scans the outbox when it may hold calls no hint announced (after a start, when a
  /// call did not fit in flight or came back unapplied), and at least this often otherwise.
  std::chrono::milliseconds scan_every{1000};
  /// Result procedure invocations that go to a state actor together, in one transaction, at
  /// most (state_actor.hpp): one batch is in flight to each state actor, and the results
  /// that arrive meanwhile make up the next. 1 (default): each result in its own request, at
  /// once. Batches read fewer instructions a task under callgrind (4: 245.9k against 256.8k)
  /// but did not run faster on a quiet 2-core machine (perf_pieces 1 KiB x 1000, alternating
  /// pairs, fixed overhead at 1 against 4: 69.6/72.0/71.4 against 101.1/92.0/89.5 us, node
  /// CPU per task 84.7/88.9/81.6 against 125.3/97.1/102.1; two more pairs 92.8/69.5 against
  /// 74.5/77.4): results wait for the batch in flight, so fewer tasks are in flight.
  uint32_t max_apply_batch = 1;
  /// Timeout of one call (function actor) and of one result procedure invocation.
  std::chrono::milliseconds call_timeout{300000};
  /// False when the node has no compute process: no function actors; each call fails as
  /// unreachable (and, after give_up_after, with that error as its result).
  bool has_compute = true;
  /// A call that cannot reach the compute process gets its last error as its final result
  /// once this long has passed since its first failure (0: it is tried forever).
  std::chrono::milliseconds give_up_after{60000};
  /// Pause before a call that could not reach the compute process is sent again.
  std::chrono::milliseconds retry_pause{1000};
  /// At most one line per this long in the node's log (stderr) about unreachable calls.
  std::chrono::milliseconds log_every{10000};
  /// Provenance: function calls and their results are reported here, and handed on to the
  /// function actors (null: not recorded). The result procedures record themselves.
  std::shared_ptr<runtime::provenance_hook> provenance;
};

/// Spawns the dispatcher. `db` must outlive it (the node owns both; stop the dispatcher
/// first). Handles (caf::get_atom) -> std::string: counters as JSON (sent, applied,
/// duplicates, call_errors, apply_errors, apply_requests (requests that carried results to
/// state actors: fewer than the results when they went in batches), hinted, in_flight,
/// reloads_started, reloads_done,
/// reload_errors, reload_resent, reloads_exhausted, reloads_waiting, unreachable_errors,
/// given_up; compute: {state (connected, unreachable, none or unknown), endpoint, last_error,
/// last_error_ago_s, give_up_after_s}; failing: [{call, model, model_version, attempts,
/// last_error, failing_for_s, gives_up_in_s}]).
caf::actor spawn_outbox_dispatcher(caf::actor_system& sys, storage::database& db,
                                   runtime::router route, dispatcher_config cfg);

} // namespace comb::actors
