// comb::runtime shared-memory pieces: when a function actor and the compute process run on
// one host, a task's bytes go through a POSIX shared-memory segment that the function actor
// owns (shm_arena) and the compute process maps once (shm_reader); only a small descriptor
// (shm_ref) travels over the CAF connection. Over TCP the same bytes are copied about six
// times (encoding, CAF's serialization, the socket both ways, CAF's deserialization); here
// they are copied once, into the segment: the compute process reads them in place
// (shm_reader::view), or copies them out (shm_reader::read). A function actor uses it only for a
// compute process on a loopback address, and falls back to TCP pieces for good when the
// compute process cannot open its segment (another host or container behind a forwarded
// port, another user, an older `comb compute`).
//
// Safety: segments are created 0600 with a random name (/comb-pieces-<pid>-<16 hex>); the
// reader accepts only names of that form owned by its own user, checks bounds against the
// segment's size, and checks a ticket written in front of each region before and after it
// copies (or, read in place, before the bytes are used and after the last use: the window's
// intact()), so a region that was reused or torn gives an error, never wrong bytes. The writer
// reuses a region only after the compute process answered for it; when the connection is
// lost it retires the whole segment (unlinks it) and starts a new one, so a compute process
// that is still reading an old region is never overwritten. Segments of dead processes are
// removed when a new arena is made. Not thread-safe: each object belongs to one actor.
#pragma once

#include "runtime/pieces/piece.hpp"

#include <caf/expected.hpp>

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace comb::runtime {

/// Where a task's bytes lie in a segment: what travels over the connection.
struct shm_ref {
  /// The segment's name, "/comb-pieces-<pid>-<16 hex digits>".
  std::string segment;
  /// Offset of the region (its 16-byte header: ticket, size) in the segment.
  uint64_t offset = 0;
  /// Payload bytes after the header.
  uint64_t size = 0;
  /// The region's ticket: a number the writer chose for this use of the region.
  uint64_t ticket = 0;
};

/// Bytes in front of each region's payload (ticket, size).
inline constexpr size_t shm_region_header = 16;

/// True for names of the form shm_arena makes.
bool valid_shm_segment_name(std::string_view name);

/// True for "localhost", 127.0.0.0/8 and ::1 (a compute process that may share this host's
/// /dev/shm; shm_reader's answer decides).
bool is_loopback_host(std::string_view host);

/// The writer's side: one segment of fixed capacity, regions allocated first-fit.
class shm_arena {
public:
  /// Creates a segment of `capacity` bytes (pages are only used once written). Removes the
  /// segments of processes that no longer exist first. Errors: errc::unsupported naming the
  /// system call that failed.
  static caf::expected<std::shared_ptr<shm_arena>> create(size_t capacity);

  ~shm_arena();
  shm_arena(const shm_arena&) = delete;
  shm_arena& operator=(const shm_arena&) = delete;

  const std::string& name() const { return name_; }
  size_t capacity() const { return capacity_; }
  /// Bytes in allocated regions (headers and alignment included).
  size_t used() const { return used_; }

  /// Copies `size` bytes into a new region and returns where they are, or std::nullopt when
  /// no region that large is free (send over TCP instead).
  std::optional<shm_ref> put(const char* data, size_t size);
  /// A new region of `size` bytes for the caller to fill at the pointer given (before it
  /// sends the ref), or std::nullopt as put(). The pointer is valid until release().
  std::optional<std::pair<shm_ref, char*>> reserve(size_t size);

  /// Frees the region of `ref` (a ref this arena gave; others are ignored).
  void release(const shm_ref& ref);

  /// Removes the segment's name: nobody can open it any more; mappings stay valid until
  /// they are unmapped. Called when the connection it served is lost.
  void retire();

private:
  shm_arena() = default;

  std::string name_;
  char* base_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
  uint64_t next_ticket_ = 0;
  bool linked_ = false;
  /// Free ranges: offset -> length (coalesced).
  std::map<uint64_t, uint64_t> free_;
  /// Allocated ranges: offset -> length.
  std::map<uint64_t, uint64_t> taken_;
};

/// The reader's side (the compute process): maps each segment once and keeps up to
/// `max_mappings` of them, least recently used dropped first.
class shm_reader {
public:
  explicit shm_reader(size_t max_mappings = 32) : max_(max_mappings) {}
  ~shm_reader();
  shm_reader(const shm_reader&) = delete;
  shm_reader& operator=(const shm_reader&) = delete;

  /// Copies the region's payload out. Errors: errc::unsupported when the segment cannot be
  /// opened or mapped here (not this host, not this user: the sender should use TCP), and
  /// errc::protocol_error for a name of the wrong form, a region beyond the segment, or a
  /// ticket or size that does not match (the region was reused or torn). The bytes go into
  /// `buffer` (a buffer used before: its memory is reused, nothing is zeroed).
  caf::expected<std::vector<char>> read(const shm_ref& ref, std::vector<char> buffer = {});

  /// The region's payload in place: a window into the segment's mapping (a payload_buffer of
  /// external bytes; the mapping stays while a window into it is held, also past this
  /// reader), no copy. Checked as read() checks before it copies; the window's intact()
  /// reads the ticket and size again: false once the writer released or reused the region,
  /// and then nothing computed from the bytes may be answered (the writer keeps a region
  /// until its task is answered, so this happens only when it gave up on the task). Errors
  /// as read()'s. The window may be read and released on any thread.
  caf::expected<payload_buffer> view(const shm_ref& ref);

  /// Segments mapped now.
  size_t mapped() const { return maps_.size(); }

private:
  /// A segment mapped read-only; unmapped with the last holder (the reader, windows).
  struct segment_map {
    const char* base = nullptr;
    size_t size = 0;
    segment_map(const char* b, size_t n) : base(b), size(n) {}
    ~segment_map();
    segment_map(const segment_map&) = delete;
    segment_map& operator=(const segment_map&) = delete;
  };
  struct mapping {
    std::string name;
    std::shared_ptr<const segment_map> seg;
  };

  caf::expected<const mapping*> map(const std::string& name);
  /// The payload of `ref` in its mapping, checked (name, bounds, ticket).
  caf::expected<std::pair<const mapping*, const char*>> locate(const shm_ref& ref);

  size_t max_;
  std::list<mapping> maps_; // most recently used first
};

} // namespace comb::runtime
