// comb::runtime::provenance_hook: how the runtime reports what it does to provenance.
// State actors call it for every procedure invocation (with the rows the transaction wrote)
// and the runtime calls it for every message between Comb actors. One hook is shared by all
// actors of a node, so implementations must be thread-safe.
#pragma once

#include "storage/invocation_record.hpp"

namespace comb::storage {
class transaction;
} // namespace comb::storage

namespace comb::runtime {

// The records are storage's own types (storage/invocation_record.hpp); the runtime names them
// here so that hooks and actors read as before.
using storage::invocation_record;
using storage::message_record;
using storage::row_change;
using storage::row_read;

/// Receives provenance from a node. Thread-safe.
class provenance_hook {
public:
  virtual ~provenance_hook() = default;

  /// Called inside the transaction, just before commit, for a successful invocation. The
  /// hook may write to `txn` (e.g. a pending-record table) so that the record is durable
  /// exactly when the transaction is: a crash after commit and before the log append can
  /// then be repaired on recovery. Always followed, on the same thread, by after_commit.
  virtual void before_commit(storage::transaction& txn, invocation_record& rec) = 0;

  /// Called right after the commit attempt that followed before_commit, whether or not it
  /// succeeded (a failed attempt may be retried: before_commit is then called again).
  virtual void after_commit(const invocation_record& rec, bool committed) = 0;

  /// Called for an invocation that did not commit (refused, failed, rolled back).
  virtual void on_failed(const invocation_record& rec) = 0;

  /// Called for every message between Comb actors.
  virtual void on_message(const message_record& msg) = 0;

  /// True when row reads should be recorded too (a config option).
  virtual bool record_reads() const { return false; }
};

} // namespace comb::runtime
