// comb::storage::blob_store: large values kept beside the tables, as WiscKey and RocksDB's
// BlobDB do. Each blob is appended once to an append-only segment file under
// `<data>/blobs/` and is named by a blob_ref, which a table row stores in its place; the
// transaction that writes the row makes the blob part of the database (transaction::put_blob).
// A blob thus costs one write and one hash, not a WAL copy, a memtable copy, a flush and
// compactions. Each entry is framed as {u64 size, u64 XXH3(data), u64 XXH3(size, hash)} + data
// (XXH3 checks a MiB many times faster than CRC32C); reads check the frame and the data
// against the ref and name the segment file and offset when something is wrong. A segment is retired once it is sealed (a newer one took over) and
// no live blob is left in it: a few retired files are kept as spares and overwritten by later
// segments (writing over cached file pages is several times cheaper than growing a new file,
// as RocksDB's recycled WAL files show), the rest are deleted. Writers append to one of
// several active segments ("lanes", by thread), since buffered writes to one file serialize
// on its inode lock. Owned by its database; all member functions are thread-safe; appends
// reserve their range under a short lock and write outside it.
#pragma once

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace comb::storage {

/// Where a blob lies. Encoded in 32 bytes (little-endian) in the row that owns the blob.
struct blob_ref {
  uint64_t segment = 0;
  /// Offset of the entry's frame header in the segment file.
  uint64_t offset = 0;
  uint64_t size = 0;
  /// XXH3-64 of the blob's bytes.
  uint64_t hash = 0;

  static constexpr size_t encoded_size = 32;
  std::string encode() const;
  /// nullopt when `bytes` is not an encoded ref.
  static std::optional<blob_ref> decode(std::string_view bytes);
};

class blob_store {
  struct segment;

public:
  /// Size of a segment's file header ("COMBBLOB" + u32 version + u32 reserved).
  static constexpr uint64_t header_bytes = 16;
  /// Size of an entry's frame header.
  static constexpr uint64_t frame_bytes = 24;

  /// Opens (creating it when missing) the blob folder `dir`. Existing segments are opened as
  /// sealed and kept until finish_recovery(); new blobs go to `lanes` new segments. A lane
  /// starts a new segment when its current one would exceed `segment_bytes` (a larger blob
  /// gets a segment of its own). Up to `spare_segments` retired files are kept for reuse.
  /// With `sync_names`, the folder is synced after each new or renamed segment file, so that
  /// a synced blob is found under its name after a power loss (sync durability).
  /// With `read_only`, nothing is created or written (a missing folder holds no segment) and
  /// segments are opened for reading: only read() works (append() fails).
  static caf::expected<std::unique_ptr<blob_store>> open(
    const std::string& dir, uint64_t segment_bytes = 64u << 20, size_t lanes = 4,
    size_t spare_segments = 4, bool sync_names = false, bool read_only = false);
  ~blob_store();
  blob_store(const blob_store&) = delete;
  blob_store& operator=(const blob_store&) = delete;

  /// Appends `bytes` as a new live blob (not yet referenced by any committed row).
  caf::expected<blob_ref> append(std::string_view bytes);

  /// Reads the blob into `dest` (ref.size bytes). Errors: not_found (its segment was deleted:
  /// the row that held the ref is gone), corrupt_data (frame or CRC mismatch, short file),
  /// storage_error (I/O).
  caf::error read(const blob_ref& ref, char* dest) const;

  /// A blob to read later: it keeps the blob's segment file open and out of reuse, so that
  /// read() gives the blob's bytes even after its row was overwritten or deleted and the
  /// segment retired (until the pin is dropped). Used to hand a committed row's bytes to
  /// whoever sends them, who reads them straight to where they go.
  class pinned {
  public:
    uint64_t size() const { return ref_.size; }
    /// XXH3-64 of the bytes, as recorded when the blob was written.
    uint64_t hash() const { return ref_.hash; }
    /// Reads the blob into `dest` (size() bytes), checked as blob_store::read checks it.
    caf::error read(char* dest) const;
    /// Where the bytes lie: the segment file's path and their offset in it (after the
    /// blob's frame). They stay unchanged while the pin lives; the file may be unlinked
    /// once none of its blobs is live (read() still reads them).
    std::string file() const;
    uint64_t file_offset() const;

  private:
    friend class blob_store;
    std::shared_ptr<segment> seg_;
    blob_ref ref_;
    std::string dir_;
  };
  /// Pins the blob of `ref`; errors as read() (not_found when its segment is gone).
  caf::expected<pinned> pin(const blob_ref& ref) const;

  /// Makes the blobs appended to `segment` so far durable (fdatasync of its file).
  caf::error sync(uint64_t segment);

  /// Drops one reference to a blob: after its row was deleted or overwritten (once the
  /// transaction committed), or when the transaction that appended it did not commit.
  void release(const blob_ref& ref);

  /// At open, before finish_recovery(): counts a blob referenced by a committed row as live.
  /// Returns false when its segment file is missing.
  bool adopt(const blob_ref& ref);

  /// Ends recovery: retires the old segments that hold no live blob (blobs of transactions
  /// that never committed, of rows deleted before the last shutdown). Returns how many.
  size_t finish_recovery();

  /// Number of segment files in use (not counting spares), and bytes of live blobs.
  size_t segment_count() const;
  /// Retired segment files kept for reuse.
  size_t spare_count() const;
  uint64_t live_bytes() const;
  const std::string& dir() const { return dir_; }

  /// The file name of a segment ("<16 hex digits>.blob").
  static std::string segment_name(uint64_t id);

private:
  /// The open segment of `ref`; not_found naming the file when it is gone.
  caf::expected<std::shared_ptr<segment>> find_segment(const blob_ref& ref) const;
  static caf::error read_from(const segment& seg, const std::string& dir, const blob_ref& ref,
                              char* dest);
  blob_store(std::string dir, uint64_t segment_bytes, size_t spare_segments, bool sync_names)
    : dir_(std::move(dir)), segment_bytes_(segment_bytes), max_spares_(spare_segments),
      sync_names_(sync_names) {}
  caf::error start_segment(size_t lane);                                 // with mtx_ held
  void retire(std::map<uint64_t, std::shared_ptr<segment>>::iterator i); // with mtx_ held

  std::string dir_;
  uint64_t segment_bytes_;
  size_t max_spares_;
  bool sync_names_;
  mutable std::mutex mtx_;
  std::map<uint64_t, std::shared_ptr<segment>> segments_;
  std::vector<std::shared_ptr<segment>> lanes_;
  std::vector<std::shared_ptr<segment>> spares_;
  uint64_t next_id_ = 1;
  uint64_t live_bytes_ = 0;
};

} // namespace comb::storage
