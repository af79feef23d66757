// comb::runtime blob-file pieces: when a call's input is one blob of the node's blob store
// (outbox::enqueue_rows of one blob row, pinned by its procedure) and the compute process
// runs on the same host, the function actor sends where the bytes lie in the blob segment
// file (blob_file_ref) and the compute process reads them from the file itself: the node
// neither reads nor copies them (before, it read them into a shared-memory region that the
// compute process then copied out). The pin keeps the segment file in place, unchanged, until
// the task's reply. The compute actor reads them with a blob_file_reader: files kept open, a
// blob copied into a used buffer the first time, and read in place from the file's mapping
// (the runner reading the task's tensors there, no copy) when its bytes were read before.
//
// Safety: the reader takes only an absolute path without "." or ".." components whose file
// name is a blob segment's ("<16 hex digits>.blob"), opens it without following a final
// symbolic link, and requires a regular file owned by its own user, with the range inside
// it; the bytes must match the XXH3-64 the blob store recorded when it wrote them, so a
// damaged or replaced file gives an error (corrupt_data), never wrong bytes. A compute
// process that cannot open the file (another host, container or user) answers
// errc::unsupported, and the function actor sends such tasks through shared memory instead.
#pragma once

#include "runtime/pieces/piece.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <memory>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace comb::runtime {

/// Where a pinned blob's bytes lie: what travels over the connection.
struct blob_file_ref {
  /// The blob segment file's absolute path.
  std::string path;
  /// Offset of the first byte of the blob (after its frame) in the file, and its size.
  uint64_t offset = 0;
  uint64_t size = 0;
  /// XXH3-64 of the bytes, as the blob store recorded it.
  uint64_t xxh3 = 0;
};

/// True for an absolute path without "." or ".." components whose file name has the form
/// "<16 lowercase hex digits>.blob".
bool valid_blob_file_path(std::string_view path);

/// Reads the bytes `ref` names. Errors: protocol_error (a path of another form, a range
/// outside the file), not_found (no such file: the sender should send these bytes another
/// way), unsupported (the file cannot be opened here, or is not a regular file of this user:
/// the sender should send such bytes another way from now on), corrupt_data (the bytes do not
/// match their hash), storage_error (a read failed). The bytes are read into `buffer` (a
/// buffer used before: its memory is reused, and the part of it that was already sized is
/// not zeroed first, so a recycled buffer costs neither page faults nor a fill), and hashed
/// chunk by chunk as they arrive, while they are still in the cache.
caf::expected<std::vector<char>> read_blob_file(const blob_file_ref& ref,
                                                std::vector<char> buffer = {});

/// Reads pinned blobs for a compute process, keeping each segment file open (at most
/// `max_files`, the least recently read go first): per blob an fstat of the kept descriptor
/// instead of an open, fstat and close. The first read of a range (offset, size) of a file is
/// a copy (pread into `spare`, a used buffer, hashed chunk by chunk as read_blob_file does);
/// a range read before is not copied: the file is mapped read-only once and the blob is a
/// window into the mapping (payload_buffer with external bytes), checked against its hash on
/// every read. (Touching new pages of a mapping costs a page-table entry per 4 KiB page, more
/// than the copy on the VMs here; pages read before are mapped already.) The same checks as
/// read_blob_file apply when a file is first opened (path form, no symbolic link, a regular
/// file of this user), and on every read the range must lie inside the file as it is now. A
/// file found unlinked (its segment was retired; a pin still holds it) serves that read and
/// is let go. A kept file whose bytes do not match is opened afresh once (its name may have
/// been taken by a new file) before the read fails with corrupt_data.
/// A file cut short while a window into it is in use would raise SIGBUS: a handler (installed
/// with the first reader, passing other faults on to the handler before it) maps zeros over
/// the missing pages and marks the mapping torn, so that payload_buffer::intact() is false for
/// every window into it: the compute actor then fails those tasks (corrupt_data) instead of
/// answering with what was computed from the zeros. Not thread-safe (one compute actor owns
/// it); the windows it hands out may be read and released on any thread.
class blob_file_reader {
public:
  explicit blob_file_reader(size_t max_files = 16);
  ~blob_file_reader();
  blob_file_reader(const blob_file_reader&) = delete;
  blob_file_reader& operator=(const blob_file_reader&) = delete;

  /// The bytes `ref` names: a copy into `spare` (moved from) the first time, a window into the
  /// file's mapping when the range was read before (`spare` is left alone). Errors as
  /// read_blob_file's.
  caf::expected<payload_buffer> read(const blob_file_ref& ref, std::vector<char>& spare);

  /// Reads that were windows into a mapping (no copy).
  size_t in_place() const;

  /// Lets go of files not read for `idle` (their descriptors and mappings, once no window
  /// into them is left). Returns how many files stay open.
  size_t release_idle(std::chrono::steady_clock::duration idle);

  /// Files open now.
  size_t files() const;

private:
  struct state;
  std::unique_ptr<state> st_;
};

} // namespace comb::runtime
