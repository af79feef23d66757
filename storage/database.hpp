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
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rocksdb {
class DB;
class TransactionDB;
class ColumnFamilyHandle;
struct ColumnFamilyOptions;
class Transaction;
class Status;
} // namespace rocksdb

namespace comb::storage {

class transaction;
class blob_store;

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
  /// A blobs table is written and read only with transaction::put_blob, get_blob and
  /// del_blob; its kind is declared again each time the folder is opened.
  caf::error create_table(const std::string& name, table_kind kind = table_kind::rows);

  /// A table's column family and what it holds.
  struct table_ref {
    rocksdb::ColumnFamilyHandle* handle = nullptr;
    table_kind kind = table_kind::rows;
    /// The table's name, held by the database as long as it is open.
    std::string_view name;
  };

  /// The table `name`, or nullopt (one lookup for a transaction's check and its I/O).
  std::optional<table_ref> table(std::string_view name) const;

  /// True when the table exists.
  bool has_table(std::string_view name) const;

  /// Names of all tables, sorted; internal tables start with "__".
  std::vector<std::string> tables() const;

  /// Starts a pessimistic transaction (row locks, read-your-writes). Its commit() returns
  /// once the commit is as durable as the mode asks: on disk (sync) or written to the OS
  /// (async). With `group_sync` the commit is written but, in sync mode, not yet on disk:
  /// the caller must call sync_group() before it acknowledges the commit, and so shares one
  /// fsync among many commits (the group committer).
  std::unique_ptr<transaction> begin(bool group_sync = false);

  /// Takes back the RocksDB transaction of a finished (committed or rolled back)
  /// storage::transaction, so that a later begin() reinitializes it instead of allocating a
  /// new one (RocksDB's BeginTransaction with an old transaction). Called by transaction's
  /// destructor; keeps at most a few, deletes the rest.
  void recycle(std::unique_ptr<rocksdb::Transaction> txn);

  /// A write to a table, as a WAL batch holds it.
  struct wal_write {
    /// The table's name ("" for a column family the database does not know).
    std::string_view table;
    std::string_view key;
    /// The value as stored (empty for a delete).
    std::string_view value;
    bool del = false;
  };

  /// Calls fn with every blob written with transaction::put_log_data in the WAL batches after
  /// sequence number `after_seq`, in commit order, and the table writes that come before the
  /// blob in its batch (the blob index's own writes left out). A batch may hold several
  /// transactions (a write group): a transaction's writes are the last ones before the blob
  /// it wrote last. Sees only WAL files still kept: the live ones and, with
  /// options::keep_wal_seconds, the archived ones. The views last for the call.
  caf::error scan_wal(uint64_t after_seq,
                      const std::function<void(std::string_view blob,
                                               const std::vector<wal_write>& before)>& fn) const;

  /// The sequence number of the last write committed.
  uint64_t latest_sequence() const;

  /// Makes everything committed so far durable (fsync of the WAL), whatever the mode: for
  /// tools that write many commits and then close (replay).
  caf::error sync_wal();

  /// True when a commit is acknowledged only once it is on disk (durability::sync). The
  /// database is the one place that knows the mode: a node asks this to decide whether it
  /// runs a group committer, and the provenance recorder whether it syncs the log.
  bool syncs_commits() const { return opts_.mode == durability::sync; }

  /// The group-commit primitive: makes every commit so far durable with one fsync of the
  /// WAL when commits must be synced, and does nothing otherwise. Its one user is the group
  /// committer actor, which calls it once for the commits of transactions begun with
  /// `begin(/*group_sync=*/true)` before acknowledging any of them.
  caf::error sync_group();

  /// A digest of every user table (not "__" tables): FNV-1a 64 over table names, keys and
  /// values in key order, printed as 16 hex digits; a row whose value is in the blob store
  /// counts with the blob's bytes. Equal states give equal digests.
  caf::expected<std::string> digest() const;

  /// Number of rows in a table (a full scan; for tests and tools).
  caf::expected<uint64_t> count(std::string_view table) const;

  /// Reads one committed value (outside any transaction; also when opened read-only): the
  /// bytes as stored (a blobs table's large values are blob references), or nullopt.
  caf::expected<std::optional<std::string>> get(std::string_view table, std::string_view key) const;

  /// Calls fn(key, value) for the committed rows of `table` in key order until it returns
  /// false (outside any transaction; also when opened read-only). An unknown table is empty.
  caf::error scan(std::string_view table,
                  const std::function<bool(std::string_view, std::string_view)>& fn) const;

  /// True when the folder was opened with options::read_only.
  bool read_only() const { return opts_.read_only; }

  /// The blob store under `<dir>/blobs` (see transaction::put_blob).
  blob_store& blobs() const { return *blobs_; }

  /// The column family of blob_index_table.
  rocksdb::ColumnFamilyHandle* blob_index() const { return blob_index_; }

  /// Rows of the blob index whose blob segment was missing at open (their reads fail).
  uint64_t missing_blobs() const { return missing_blobs_; }

  /// Internal table indexing every row whose value is in the blob store: table '\0' key ->
  /// encoded blob_ref. Read at open to learn which blobs are live.
  static constexpr const char* blob_index_table = "__blobs";

  const options& opts() const { return opts_; }
  unsigned keep_wal_seconds() const { return opts_.keep_wal_seconds; }
  const std::string& dir() const { return dir_; }

  /// The column family of a table, or nullptr. For transaction and baselines only.
  rocksdb::ColumnFamilyHandle* handle(std::string_view table) const;

  /// The underlying RocksDB database, for benchmarks that measure the direct path.
  rocksdb::TransactionDB* raw() const { return db_; }

private:
  database(std::string dir, options opts);
  caf::error open_blobs();

  std::string dir_;
  options opts_;
  /// Null when opened read-only.
  rocksdb::TransactionDB* db_ = nullptr;
  /// What reads go through: db_, or the database opened read-only.
  rocksdb::DB* reader_ = nullptr;
  /// Hashes a std::string and a std::string_view alike, so that table() looks a name up
  /// without building a string.
  struct name_hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::shared_mutex mtx_;
  std::unordered_map<std::string, table_ref, name_hash, std::equal_to<>> cfs_;
  /// Finished RocksDB transactions kept for begin() to reuse (see recycle()).
  std::mutex spare_mtx_;
  std::vector<std::unique_ptr<rocksdb::Transaction>> spare_;
  std::vector<rocksdb::ColumnFamilyHandle*> owned_;
  /// Options of every column family (block cache, table format), also for new tables.
  std::unique_ptr<rocksdb::ColumnFamilyOptions> cf_options_;
  std::unique_ptr<blob_store> blobs_;
  rocksdb::ColumnFamilyHandle* blob_index_ = nullptr;
  uint64_t missing_blobs_ = 0;
};

} // namespace comb::storage
