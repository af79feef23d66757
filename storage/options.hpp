// comb::storage::options: how a data folder is opened. Plain value type.
#pragma once

#include <cstddef>
#include <string>

namespace comb::storage {

/// When a commit is acknowledged.
enum class durability {
  /// Only after the WAL is on disk; concurrent commits share one fsync (group commit).
  sync,
  /// Once the WAL is written to the OS; no fsync (survives a process crash, not power loss).
  async,
};

/// Parses "sync" or "async".
bool parse_durability(const std::string& text, durability& out);
std::string to_string(durability x);

/// What a table holds.
enum class table_kind {
  /// Rows of bytes or MessagePack, written with transaction::put, put_row, ...
  rows,
  /// Values of any size written with transaction::put_blob: large ones live in the blob store
  /// (storage/blob_store.hpp), the row keeps a reference.
  blobs,
};

struct options {
  durability mode = durability::sync;
  /// Create the folder (and Comb's marker file) when it does not exist or is empty.
  bool create_if_missing = true;
  /// Open without writing anything (RocksDB OpenForReadOnly: no lock, no LOG file, no blob
  /// segment; the WAL is read, not replayed into files), for tools that read a stopped node's
  /// folder, also on a read-only filesystem: digest, `log verify --data`, replay's source.
  /// Only reads work: begin() must not be called, create_table fails for a new table.
  bool read_only = false;
  /// How long a transaction waits for a row lock before failing with errc::conflict.
  long long lock_timeout_ms = 1000;
  /// Block cache size for all tables.
  size_t block_cache_bytes = 64u << 20;
  /// Keep WAL files this long after their data is flushed (RocksDB's WAL archive), so that
  /// data carried only in the WAL (provenance records, see transaction::put_log_data) can be
  /// read back with database::scan_wal after a crash. 0: delete them at once.
  unsigned keep_wal_seconds = 0;
  /// Values written with put_blob up to this size stay in the row; larger ones go to the
  /// blob store.
  size_t blob_inline_max = 32u << 10;
  /// Size at which the blob store starts a new segment file.
  size_t blob_segment_bytes = 64u << 20;
  /// Segment files written at the same time (by different threads).
  size_t blob_lanes = 4;
  /// Retired segment files kept to be written over by new segments.
  size_t blob_spare_segments = 4;
};

} // namespace comb::storage
