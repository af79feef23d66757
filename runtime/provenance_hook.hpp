// comb::runtime::provenance_hook: how the runtime reports what it does to provenance.
// State actors call it for every procedure invocation (with the rows the transaction wrote)
// and the runtime calls it for every message between Comb actors. One hook is shared by all
// actors of a node, so implementations must be thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace comb::storage {
class transaction;
} // namespace comb::storage

namespace comb::runtime {

/// One row change made by a transaction, in the order the transaction made it.
struct row_change {
  enum class op : uint8_t { insert = 1, update = 2, del = 3 };
  std::string table;
  std::string key;
  op kind = op::insert;
  /// True when `value` is a JSON row encoded as MessagePack (written with put_row); decode
  /// it with nlohmann::json::from_msgpack. False for raw bytes (e.g. model chunks).
  bool is_row = true;
  /// The new value as stored (empty for del).
  std::string value;
};

/// One row read by a transaction (recorded only when the config asks for reads).
struct row_read {
  std::string table;
  std::string key;
};

/// Everything known about one stored-procedure invocation.
struct invocation_record {
  uint64_t execution_id = 0;
  uint64_t parent_id = 0;
  std::string procedure;
  std::string role;
  /// Arguments as JSON text: replay re-executes the procedure with exactly these.
  std::string args;
  /// Result as JSON text on success, the error text otherwise.
  std::string result;
  /// "ok" or the comb::errc name of the failure.
  std::string status;
  bool read_only = false;
  uint32_t partition = 0;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  std::string sender;
  std::string receiver;
  std::vector<row_change> changes;
  std::vector<row_read> reads;
};

/// A message between Comb actors (invocation, reply, function call, piece, result).
struct message_record {
  std::string kind;
  std::string sender;
  std::string receiver;
  uint64_t execution_id = 0;
  uint64_t parent_id = 0;
  std::string procedure;
  std::string role;
  std::string status;
  int64_t timestamp_ns = 0;
  std::string payload;
};

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
