// comb::storage::database: a Comb data folder, i.e. a RocksDB TransactionDB with one column
// family per named table, a marker file recording the format version, and the write-ahead
// log that makes commits durable. The database is owned by its node (or by a tool such as
// replay); all member functions are thread-safe. RocksDB's names stop at this folder.
#pragma once

#include "storage/options.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rocksdb {
class TransactionDB;
class ColumnFamilyHandle;
class Status;
} // namespace rocksdb

namespace comb::storage {

class transaction;

/// The on-disk format version written to `<dir>/COMB` and checked on open.
constexpr int format_version = 1;

/// Converts a RocksDB status into a Comb error (storage_error, conflict, corrupt_data...).
caf::error to_error(const rocksdb::Status& s, std::string_view what);

class database {
public:
  /// Opens (or, with `opts.create_if_missing`, creates) the data folder `dir`. A folder with
  /// files but no Comb marker gives errc::not_comb_folder; another format version gives
  /// errc::format_mismatch. Neither touches the folder's contents.
  static caf::expected<std::unique_ptr<database>> open(const std::string& dir,
                                                        const options& opts = {});

  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  /// Creates the table if it does not exist yet. Names are 1..128 chars of [A-Za-z0-9_.-].
  caf::error create_table(const std::string& name);

  /// True when the table exists.
  bool has_table(std::string_view name) const;

  /// Names of all tables, sorted; internal tables start with "__".
  std::vector<std::string> tables() const;

  /// Starts a pessimistic transaction (row locks, read-your-writes).
  std::unique_ptr<transaction> begin();

  /// Calls fn with every blob written with transaction::put_log_data in the WAL batches after
  /// sequence number `after_seq`, in commit order. Sees only WAL files still kept: the live
  /// ones and, with options::keep_wal_seconds, the archived ones.
  caf::error scan_wal(uint64_t after_seq,
                      const std::function<void(std::string_view blob)>& fn) const;

  /// The sequence number of the last write committed.
  uint64_t latest_sequence() const;

  /// Makes everything committed so far durable (fsync of the WAL).
  caf::error sync_wal();

  /// A digest of every user table (not "__" tables): FNV-1a 64 over table names, keys and
  /// values in key order, printed as 16 hex digits. Equal states give equal digests.
  caf::expected<std::string> digest() const;

  /// Number of rows in a table (a full scan; for tests and tools).
  caf::expected<uint64_t> count(std::string_view table) const;

  durability mode() const { return opts_.mode; }
  unsigned keep_wal_seconds() const { return opts_.keep_wal_seconds; }
  const std::string& dir() const { return dir_; }

  /// The column family of a table, or nullptr. For transaction and baselines only.
  rocksdb::ColumnFamilyHandle* handle(std::string_view table) const;

  /// The underlying RocksDB database, for benchmarks that measure the direct path.
  rocksdb::TransactionDB* raw() const { return db_; }

private:
  database(std::string dir, options opts) : dir_(std::move(dir)), opts_(opts) {}

  std::string dir_;
  options opts_;
  rocksdb::TransactionDB* db_ = nullptr;
  mutable std::shared_mutex mtx_;
  std::unordered_map<std::string, rocksdb::ColumnFamilyHandle*> cfs_;
  std::vector<rocksdb::ColumnFamilyHandle*> owned_;
};

} // namespace comb::storage
