// comb::errc: the one error-code enum for Comb's own failures. Registered as the CAF
// error category "comb" so errors cross actor and process boundaries with their message.
// Header and functions are stateless and thread-safe.
#pragma once

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>

#include <cstdint>
#include <string>

namespace comb {

/// Comb's error codes. Each carries a human-readable context string naming what went wrong.
enum class errc : uint8_t {
  /// Not an error.
  none = 0,
  /// A stored procedure of that name is not registered.
  unknown_procedure,
  /// The caller's role may not invoke the procedure; nothing ran.
  permission_denied,
  /// Arguments have the wrong type or shape.
  invalid_argument,
  /// Arguments, a payload or a request exceed a documented size limit.
  too_large,
  /// A transaction conflicted (lock timeout, deadlock, busy) and may be retried.
  conflict,
  /// The procedure itself returned an error; its transaction rolled back.
  procedure_failed,
  /// A storage operation failed (I/O, corruption reported by RocksDB).
  storage_error,
  /// The data folder exists but is not a Comb data folder.
  not_comb_folder,
  /// The data folder was written by another format version.
  format_mismatch,
  /// A table does not exist.
  unknown_table,
  /// A row or object that was expected is missing.
  not_found,
  /// A row with that key already exists.
  already_exists,
  /// A configuration file or option is invalid.
  bad_config,
  /// A network endpoint could not be bound or reached.
  network_error,
  /// Bytes on disk or on the wire do not decode (bad checksum, torn record, bad magic).
  corrupt_data,
  /// A piece, task or message violates the protocol (duplicate piece, bad counts).
  protocol_error,
  /// A deadline expired before the work completed.
  timeout,
  /// A bounded resource (memory, queue) is full; retry later.
  overloaded,
  /// A model, dataset or file is missing or does not match what was expected.
  bad_model,
  /// An operation is not supported on this backend or build.
  unsupported,
  /// The remote side (compute process, node) is gone.
  unavailable,
  /// The compute process does not hold the model version a task needs (it restarted, or
  /// unloaded a superseded version): load the version again and resend the task.
  model_not_loaded,
};

/// Returns the enumerator's name, e.g. "permission_denied".
std::string to_string(errc x);

/// The CAF error category atom for comb::errc.
constexpr caf::atom_value errc_category = caf::atom("comb");

/// Makes a CAF error of category "comb" with a context message.
caf::error make_error(errc x);
caf::error make_error(errc x, std::string context);

/// Renders any CAF error as "code: context" for people (CLI output, logs).
std::string describe(const caf::error& e);

/// True when `e` is the Comb error `x`.
inline bool is(const caf::error& e, errc x) {
  return e.category() == errc_category && e.code() == static_cast<uint8_t>(x);
}

} // namespace comb
