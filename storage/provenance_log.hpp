// comb::storage::provenance_log: the append-only provenance log on disk. A log is a folder with
// a CLUSTER file (the id of the cluster that owns it) and segments named after their first lsn
// ("00000000000000000001.plog"), rotated by size. A segment starts with a 40-byte header
// (magic "COMBPLOG", version, cluster id, first lsn, header CRC32C); then come frames
// [u32 length][u32 CRC32C(bytes)][bytes], each holding one encoded log_record (log_record.hpp).
//
// log_writer appends (one writer per log; not thread-safe, the provenance recorder owns it).
// On open it recovers: an incomplete or corrupt frame at the very end of the last segment (a
// torn tail) is cut off and the bytes dropped are reported; a corrupt frame with data after it
// is never skipped: open fails and says where. log_reader and verify_log read a log (also one
// being written) and stop at the first problem, naming segment and offset.
// A log starts at lsn 1 and each segment starts where the one before it ended: lsns that no
// segment holds (the first or a middle segment deleted while the last stays) are a loss that
// the writer, the reader and verify_log name (the lsn range and the segments around it);
// the writer fills them only when told to (log_options::gap_filler, --accept-log-loss).
#pragma once

#include "storage/log_record.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace comb::storage {

/// Largest record a frame may hold.
constexpr uint32_t max_record_bytes = 64u << 20;
/// Size of a segment header.
constexpr size_t segment_header_bytes = 40;

struct log_options {
  /// Rotate to a new segment once a segment holds this many bytes.
  uint64_t segment_bytes = 64ull << 20;
  /// When set, log_writer::open fills lsns that no segment holds (segments before the first
  /// one or between two were lost) with the records this returns, given the lsn and the
  /// missing range as text, in segments of their own. When empty, open refuses such a log.
  std::function<std::string(uint64_t lsn, const std::string& missing)> gap_filler;
};

/// What a scan of a log found.
struct log_stats {
  uint64_t segments = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t first_lsn = 0;
  uint64_t last_lsn = 0;
  /// Bytes of an incomplete frame at the end of the last segment (a write in progress, or a
  /// torn tail that recovery will cut).
  uint64_t tail_bytes = 0;
  std::string tail_segment;
};

class log_writer {
public:
  /// Opens (creating when missing) the log in `dir`, recovering its tail.
  static caf::expected<std::unique_ptr<log_writer>> open(const std::string& dir,
                                                         log_options opts = {});
  ~log_writer();
  log_writer(const log_writer&) = delete;
  log_writer& operator=(const log_writer&) = delete;

  /// The lsn the next record must carry (1 for an empty log).
  uint64_t next_lsn() const { return next_lsn_; }
  uint64_t cluster_id() const { return cluster_id_; }
  /// Bytes cut from a torn tail when the log was opened, and a line saying where.
  uint64_t bytes_dropped() const { return dropped_; }
  const std::string& recovery_note() const { return note_; }

  /// Buffers one encoded record; `lsn` must equal next_lsn().
  caf::error append(uint64_t lsn, std::string_view encoded);
  /// Writes the buffer to the segment file (survives a process crash).
  caf::error flush();
  /// flush() and fdatasync (survives power loss).
  caf::error sync();

private:
  log_writer() = default;
  caf::error open_segment(uint64_t first_lsn);
  caf::error write_all(const char* p, size_t n);

  std::string dir_;
  log_options opts_;
  uint64_t cluster_id_ = 0;
  uint64_t next_lsn_ = 1;
  uint64_t dropped_ = 0;
  std::string note_;
  int fd_ = -1;
  std::string segment_;
  uint64_t segment_size_ = 0;
  std::string buf_;
};

class log_reader {
public:
  /// Opens the log in `dir` for reading; errors when it is missing or has no CLUSTER file.
  static caf::expected<log_reader> open(const std::string& dir);

  /// Visits every record with lsn >= from_lsn in order; `fn` returns false to stop early.
  /// Returns the first problem (corrupt frame, foreign or bad segment, lsn gap) naming the
  /// segment and offset; an incomplete frame at the end of the last segment is not an error
  /// (it is counted in stats.tail_bytes).
  /// The reader remembers where the last call stopped (segment, offset and lsn of the next
  /// frame): a later call without stats whose from_lsn is at or past that lsn reads and checks
  /// only the frames from there on, when the segments up to there are the same files as then;
  /// otherwise (a segment gone, replaced or cut short, or an earlier from_lsn) it reads the
  /// log as a first call does. Not for two threads at once.
  caf::error for_each(uint64_t from_lsn, const std::function<bool(log_record&&)>& fn,
                      log_stats* stats = nullptr) const;

  uint64_t cluster_id() const { return cluster_id_; }
  const std::string& dir() const { return dir_; }

  /// Segment file names in order.
  std::vector<std::string> segments() const;

  /// Frames read by the calls so far (those that a resumed call did not read again).
  uint64_t frames_read() const { return cursor_.frames_read; }

private:
  // Where the last call stopped: the next frame is at `offset` of segs.back() and holds
  // `next_lsn`; segs are the segment names up to it, as they were listed then.
  struct cursor {
    std::vector<std::string> segs;
    uint64_t offset = 0;
    uint64_t next_lsn = 0;
    uint64_t dev = 0;
    uint64_t ino = 0;
    uint64_t frames_read = 0;
  };
  caf::error scan(const std::vector<std::string>& segs, size_t first, uint64_t start,
                  uint64_t expect, uint64_t from_lsn, const std::function<bool(log_record&&)>& fn,
                  log_stats& st, bool& resumed) const;

  std::string dir_;
  uint64_t cluster_id_ = 0;
  mutable cursor cursor_;
};

/// Checks every segment and frame of the log: headers, cluster ids, checksums, decoding and
/// lsn order. Returns the stats, or the first problem; a torn tail is a problem here (it names
/// the segment, the offset and the bytes that recovery will cut).
caf::expected<log_stats> verify_log(const std::string& dir);

} // namespace comb::storage
