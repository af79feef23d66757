// comb::storage::transaction: one pessimistic RocksDB transaction over Comb tables. It gives
// read-your-writes, locks rows it reads "for update" and every row it writes, and records
// the row changes it made (for provenance). Not thread-safe: one transaction belongs to the
// one state actor running a procedure. Destroying an uncommitted transaction rolls it back.
#pragma once

#include "storage/invocation_record.hpp"
#include "storage/blob_store.hpp"
#include "storage/options.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rocksdb {
class ColumnFamilyHandle;
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

  /// Writes `value` without locking the row, reading it first, or recording a change: for
  /// bookkeeping rows of the runtime that exactly one writer owns (the provenance log's marks),
  /// which provenance and replay must not see. Rows of apps go through put/put_row.
  caf::error put_untracked(std::string_view table, std::string_view key, std::string_view value);

  /// Writes only when the key is absent; errc::already_exists otherwise.
  caf::error insert(std::string_view table, std::string_view key, std::string_view value);

  /// Adds a blob to this transaction's WAL entry only: it is in no table, it is durable
  /// exactly when the commit is, and database::scan_wal reads it back (e.g. after a crash).
  void put_log_data(std::string_view blob);

  /// Deletes the row (a no-op when absent, still recorded as a delete).
  caf::error del(std::string_view table, std::string_view key);

  /// Writes `bytes` as the value of a row of a blobs table (database::create_table). Values
  /// up to options::blob_inline_max stay in the row; larger ones are appended to the blob
  /// store now and become part of the database when this transaction commits (in sync mode
  /// their segment is synced first). An overwritten blob is freed after the commit; a blob
  /// of a transaction that does not commit is freed at once. The row change recorded for
  /// provenance holds the row's stored form (the bytes, or a reference to the blob).
  caf::error put_blob(std::string_view table, std::string_view key, std::string_view bytes);

  /// True when two stored values of a blobs table (as row changes record them) hold the same
  /// bytes: inline values compare as bytes; values in the blob store compare by size and hash,
  /// not by where the blob lies (a re-executed transaction, in replay, appends its blob
  /// elsewhere).
  static bool same_blob_value(std::string_view a, std::string_view b);

  /// Reads a row of a blobs table into `out` (resized to the value's size); false when the
  /// row is absent. Errors name the blob segment and offset when the blob is damaged. With
  /// `xxh3`, also gives XXH3-64 of the bytes read: for a value in the blob store its recorded
  /// hash, which the read checked, so the bytes are not hashed a second time.
  caf::expected<bool> get_blob(std::string_view table, std::string_view key,
                               std::vector<char>& out, uint64_t* xxh3 = nullptr);

  /// Like get_blob, without reading a value that lies in the blob store: `pinned` then holds
  /// it, to be read later (blob_store::pinned: checked against its hash when read, readable
  /// even once the row changed). An inline value is read into `inline_out` as get_blob
  /// would, and `pinned` is left empty. False when the row is absent.
  caf::expected<bool> pin_blob(std::string_view table, std::string_view key,
                               std::optional<blob_store::pinned>& pinned,
                               std::vector<char>& inline_out);

  /// The size of the bytes a blobs-table value holds in its stored form (as database::get
  /// returns it), or nullopt when `stored` is not such a value.
  static std::optional<uint64_t> stored_blob_size(std::string_view stored);

  /// True when the blobs-table value in its stored form holds exactly `bytes` (inline: the
  /// same bytes; in the blob store: the same size and hash), without reading the blob.
  static bool stored_blob_holds(std::string_view stored, std::string_view bytes);
  /// Decodes a row's MessagePack bytes (as put_row stores them) into `out`; false when they are
  /// not one valid MessagePack value. Unlike json::from_msgpack, which returns a copy of what
  /// it decoded (an allocation per object, member and string once more), it parses in place.
  static bool decode_row(std::string_view bytes, nlohmann::json& out);

  /// Reads the bytes of a blobs-table value in its stored form into `out`, outside any
  /// transaction (e.g. from a folder opened read-only). corrupt_data when it is not one.
  static caf::error read_stored_blob(const database& db, std::string_view stored,
                                     std::vector<char>& out, uint64_t* xxh3);
  static caf::error read_stored_blob(const database& db, std::string_view stored,
                                     std::vector<char>& out);

  /// Deletes a row of a blobs table; its blob is freed after the commit.
  caf::error del_blob(std::string_view table, std::string_view key);

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
  caf::error insert_row(std::string_view table, std::string_view key, const nlohmann::json& row);

  /// Commits; on failure the transaction is rolled back (errc::conflict when retryable).
  caf::error commit();

  /// Runs `fn` right after this transaction commits (never when it does not), on the
  /// committing thread; e.g. to tell a watcher that rows it waits for exist now.
  void after_commit(std::function<void()> fn) { after_commit_.push_back(std::move(fn)); }

  /// The database this transaction belongs to.
  database& db() const { return db_; }

  /// Discards all writes and releases the locks.
  void rollback();

  /// Checks each row the transaction reads, writes or deletes before it does (scans are not
  /// checked: they see only the rows this database holds). An error from it fails that
  /// access, and commit() refuses with it even when the caller ignored it: e.g. a row of a
  /// partitioned table that another node holds.
  using row_guard = std::function<caf::error(std::string_view table, std::string_view key)>;
  void set_row_guard(row_guard guard) { guard_ = std::move(guard); }

  /// The first error the row guard returned (none: a default error).
  const caf::error& guard_error() const { return guard_error_; }

  /// Record reads (table, key) as well as writes.
  void record_reads(bool on) { record_reads_ = on; }

  /// Record the row changes (on by default). Only provenance reads them: a caller that
  /// records none (no provenance hook) turns this off and saves a copy of every value written.
  void record_changes(bool on) { record_changes_ = on; }

  /// The row changes made so far, in order (none while record_changes is off).
  std::span<const row_change> changes() const { return {changes_.data(), recorded_}; }
  /// Moves out the row changes made so far (spare elements beyond them are dropped).
  std::vector<row_change> take_changes() {
    changes_.resize(recorded_);
    recorded_ = 0;
    return std::move(changes_);
  }
  /// Before the first change: records the row changes into `spare` itself, its elements in
  /// order (their strings keep their memory) before new ones are appended. A caller that hands
  /// back the changes of its previous transaction saves the vector's allocation and one per
  /// value written, and no element is moved. Ignored once a change is recorded.
  void reuse_changes(std::vector<row_change>&& spare) {
    if (recorded_ == 0)
      changes_ = std::move(spare);
  }
  const std::vector<row_read>& reads() const { return reads_; }
  std::vector<row_read> take_reads() { return std::move(reads_); }

  /// Whether the transaction wrote anything (stays true after take_changes()).
  bool read_only() const { return !wrote_; }

private:
  /// The column family of `table` if it holds `kind`. Errors: invalid_argument for a blob call
  /// on anything but a blobs table, or for a rows call on a blobs table (naming `blob_call`,
  /// the call to use); unknown_table for a rows call on no table.
  caf::expected<rocksdb::ColumnFamilyHandle*> cf_of(std::string_view table, table_kind kind,
                                                    const char* blob_call) const;
  caf::expected<std::optional<std::string>> read(std::string_view table, std::string_view key,
                                                 bool for_update,
                                                 table_kind kind = table_kind::rows);
  /// Reads into `value` (its memory reused); false when the key is absent.
  caf::expected<bool> read_into(std::string_view table, std::string_view key, bool for_update,
                                table_kind kind, std::string& value);
  /// A JSON row, decoded from MessagePack read into a buffer this thread reuses.
  caf::expected<std::optional<nlohmann::json>> read_row(std::string_view table,
                                                        std::string_view key, bool for_update);
  caf::error write(std::string_view table, std::string_view key, std::string_view value,
                   bool is_row, bool must_be_absent, table_kind kind = table_kind::rows);
  caf::error erase(std::string_view table, std::string_view key, table_kind kind);
  /// The next row change (a spare element when there is one) for the caller to set: every
  /// field.
  row_change& new_change();
  /// Locks a blobs-table row and schedules the release of the blob it holds (if any).
  caf::error replace_blob(std::string_view table, std::string_view key);
  /// The transaction will not commit: frees its appended blobs, forgets replaced ones and
  /// its after-commit hooks.
  void abandon();

  database& db_;
  std::unique_ptr<rocksdb::Transaction> txn_;
  bool done_ = false;
  bool record_reads_ = false;
  bool record_changes_ = true;
  bool wrote_ = false;
  /// The row changes: the first recorded_ elements; any after them are spares (reuse_changes)
  /// that the next changes are recorded into.
  std::vector<row_change> changes_;
  size_t recorded_ = 0;
  std::vector<row_read> reads_;
  /// Whether a row read or written here exists, to tell an update from an insert without
  /// another read. A procedure touches a few rows: they are kept in a small vector searched
  /// by column family and key (a key up to 15 bytes needs no allocation); past
  /// known_small_max rows every entry moves to a hash map keyed by the column family's
  /// address and the key.
  struct known_row {
    const rocksdb::ColumnFamilyHandle* cf;
    std::string key;
    bool exists;
  };
  static constexpr size_t known_small_max = 32;
  std::vector<known_row> known_small_;
  std::unordered_map<std::string, bool> known_big_;
  /// The entry of (cf, key), or null when the row was not seen here.
  bool* find_known(const rocksdb::ColumnFamilyHandle* cf, std::string_view key);
  void set_known(const rocksdb::ColumnFamilyHandle* cf, std::string_view key, bool exists);
  /// The tables this transaction looked up so far (a procedure uses a few), so that a row
  /// access after the first of its table takes no lock of the database's table map. A name
  /// here is the database's own (database::table_ref::name).
  struct known_table {
    std::string_view name;
    rocksdb::ColumnFamilyHandle* cf;
    table_kind kind;
  };
  static constexpr size_t tables_kept = 4;
  mutable std::array<known_table, tables_kept> tables_{};
  mutable size_t tables_n_ = 0;
  /// Blobs appended by this transaction (freed if it does not commit).
  std::vector<blob_ref> appended_;
  /// Blobs of rows this transaction overwrote or deleted (freed once it commits).
  std::vector<blob_ref> replaced_;
  std::vector<std::function<void()>> after_commit_;
  row_guard guard_;
  caf::error guard_error_;
  /// Asks the row guard about (table, key); remembers its first refusal.
  caf::error check_row(std::string_view table, std::string_view key);
};

} // namespace comb::storage
