// comb::storage::transaction: one pessimistic RocksDB transaction over Comb tables. It gives
// read-your-writes, locks rows it reads "for update" and every row it writes, and records
// the row changes it made (for provenance). Not thread-safe: one transaction belongs to the
// one state actor running a procedure. Destroying an uncommitted transaction rolls it back.
#pragma once

#include "runtime/provenance_hook.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rocksdb {
class Transaction;
} // namespace rocksdb

namespace comb::storage {

class database;

class transaction {
public:
  transaction(database& db, std::unique_ptr<rocksdb::Transaction> txn);
  ~transaction();

  /// Reads a value; nullopt when the key is absent.
  caf::expected<std::optional<std::string>> get(std::string_view table, std::string_view key);

  /// Reads a value and locks the row until commit or rollback (absent keys are locked too).
  caf::expected<std::optional<std::string>> get_for_update(std::string_view table,
                                                           std::string_view key);

  /// Writes raw bytes (insert or update).
  caf::error put(std::string_view table, std::string_view key, std::string_view value);

  /// Writes only when the key is absent; errc::already_exists otherwise.
  caf::error insert(std::string_view table, std::string_view key, std::string_view value);

  /// Adds a blob to this transaction's WAL entry only: it is in no table, it is durable
  /// exactly when the commit is, and database::scan_wal reads it back (e.g. after a crash).
  void put_log_data(std::string_view blob);

  /// Deletes the row (a no-op when absent, still recorded as a delete).
  caf::error del(std::string_view table, std::string_view key);

  /// Visits rows with from <= key < to in key order (empty `to` = to the end); the visitor
  /// returns false to stop. Sees this transaction's own writes.
  caf::error scan(std::string_view table, std::string_view from, std::string_view to,
                  const std::function<bool(std::string_view key, std::string_view value)>& fn);

  /// JSON rows, stored as MessagePack.
  caf::expected<std::optional<nlohmann::json>> get_row(std::string_view table,
                                                       std::string_view key);
  caf::expected<std::optional<nlohmann::json>> get_row_for_update(std::string_view table,
                                                                  std::string_view key);
  caf::error put_row(std::string_view table, std::string_view key, const nlohmann::json& row);
  caf::error insert_row(std::string_view table, std::string_view key,
                        const nlohmann::json& row);

  /// Commits; on failure the transaction is rolled back (errc::conflict when retryable).
  caf::error commit();

  /// Discards all writes and releases the locks.
  void rollback();

  /// Record reads (table, key) as well as writes.
  void record_reads(bool on) { record_reads_ = on; }

  /// The row changes made so far, in order.
  const std::vector<runtime::row_change>& changes() const { return changes_; }
  std::vector<runtime::row_change> take_changes() { return std::move(changes_); }
  const std::vector<runtime::row_read>& reads() const { return reads_; }
  std::vector<runtime::row_read> take_reads() { return std::move(reads_); }

  /// Whether the transaction wrote anything (stays true after take_changes()).
  bool read_only() const { return !wrote_; }

private:
  caf::expected<std::optional<std::string>> read(std::string_view table, std::string_view key,
                                                 bool for_update);
  caf::error write(std::string_view table, std::string_view key, std::string_view value,
                   bool is_row, bool must_be_absent);

  database& db_;
  std::unique_ptr<rocksdb::Transaction> txn_;
  bool done_ = false;
  bool record_reads_ = false;
  bool wrote_ = false;
  std::vector<runtime::row_change> changes_;
  std::vector<runtime::row_read> reads_;
  /// table + '\0' + key -> whether the row exists, for rows read or written here, to tell
  /// an update from an insert without another read.
  std::unordered_map<std::string, bool> known_;
};

} // namespace comb::storage
