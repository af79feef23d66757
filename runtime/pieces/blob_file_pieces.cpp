// Reading a pinned blob from its segment file in the compute process (see
// blob_file_pieces.hpp).
#include "runtime/pieces/blob_file_pieces.hpp"

#include "base/errc.hpp"
#include "base/xxh3.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace comb::runtime {

namespace {

std::string sys_reason() { return std::strerror(errno); }

/// Opens a blob segment file for reading with read_blob_file's checks (a regular file of
/// this process's user, no final symbolic link); its size in `size`.
caf::expected<int> open_segment(const std::string& path, uint64_t& size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return make_error(errno == ENOENT ? errc::not_found : errc::unsupported,
                      "cannot open blob segment " + path + ": " + sys_reason());
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    auto err = make_error(errc::unsupported, "cannot stat blob segment " + path + ": "
                                               + sys_reason());
    ::close(fd);
    return err;
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    ::close(fd);
    return make_error(errc::unsupported, "blob segment " + path
                                           + " is not a regular file of this process's user");
  }
  size = static_cast<uint64_t>(st.st_size);
  return fd;
}

caf::error bad_path(const std::string& path) {
  return make_error(errc::protocol_error,
                    "blob-file piece names '" + path.substr(0, 200)
                      + "', which is not an absolute path to a blob segment "
                        "(<16 hex digits>.blob)");
}

caf::error outside(const blob_file_ref& ref, uint64_t file_size) {
  return make_error(errc::protocol_error,
                    "blob-file piece: " + std::to_string(ref.size) + " bytes at offset "
                      + std::to_string(ref.offset) + " lie outside " + ref.path + " ("
                      + std::to_string(file_size) + " bytes)");
}

/// Reads and checks `ref`'s bytes from the open segment `fd` into `buffer` (see
/// read_blob_file).
caf::expected<std::vector<char>> read_range(int fd, const blob_file_ref& ref,
                                            std::vector<char> buffer);

caf::error mismatch(const blob_file_ref& ref) {
  return make_error(errc::corrupt_data, "blob in " + ref.path + " at offset "
                                          + std::to_string(ref.offset)
                                          + ": the bytes do not match their recorded hash");
}


} // namespace

bool valid_blob_file_path(std::string_view path) {
  if (path.empty() || path.front() != '/' || path.size() > 4096)
    return false;
  // No "." or ".." component, no empty one (a doubled slash), no NUL.
  size_t start = 1;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos)
      end = path.size();
    auto part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string_view::npos)
      return false;
    if (end == path.size()) {
      if (part.size() != 21 || part.substr(16) != ".blob")
        return false;
      for (char c : part.substr(0, 16))
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
          return false;
    }
    start = end + 1;
  }
  return true;
}

caf::expected<std::vector<char>> read_blob_file(const blob_file_ref& ref,
                                                std::vector<char> buffer) {
  if (!valid_blob_file_path(ref.path))
    return bad_path(ref.path);
  uint64_t file_size = 0;
  auto opened = open_segment(ref.path, file_size);
  if (!opened)
    return opened.error();
  int fd = *opened;
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  if (ref.offset > file_size || file_size - ref.offset < ref.size)
    return outside(ref, file_size);
  return read_range(fd, ref, std::move(buffer));
}

namespace {

caf::expected<std::vector<char>> read_range(int fd, const blob_file_ref& ref,
                                            std::vector<char> buffer) {
  // resize() zeroes only what lies past the buffer's old size: a recycled buffer of at
  // least ref.size bytes is read into as it is.
  auto& out = buffer;
  out.resize(ref.size);
  // Hashed a chunk at a time right after its read, while the chunk is still in the cache
  // (the streaming XXH3 gives the one-shot digest the blob store recorded).
  constexpr uint64_t chunk = uint64_t{256} << 10;
  comb::xxh3_stream hash;
  uint64_t done = 0;
  while (done < ref.size) {
    auto want = std::min<uint64_t>(chunk, ref.size - done);
    auto n = ::pread(fd, out.data() + done, want, static_cast<off_t>(ref.offset + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return make_error(errc::storage_error,
                        "read of blob segment " + ref.path + " at offset "
                          + std::to_string(ref.offset + done) + ": "
                          + (n == 0 ? std::string{"the file ends early"} : sys_reason()));
    hash.update(out.data() + done, static_cast<size_t>(n));
    done += static_cast<uint64_t>(n);
  }
  if (hash.digest() != ref.xxh3)
    return mismatch(ref);
  return buffer; // a by-value parameter: moved implicitly
}

// --- The SIGBUS guard of mapped segment files --------------------------------------------
// A read of a mapped page that lies past the end of its file (cut short while mapped) raises
// SIGBUS. The handler looks the address up among the ranges of live mappings: inside one, it
// maps a page of zeros there (the read then goes on) and marks that mapping torn; anything
// else goes to the handler installed before (comb's fatal-signal report, or the default).
// Lock-free: a slot is claimed with `used`, filled, then published through `begin`.

struct guarded_range {
  std::atomic<bool> used{false};
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<std::atomic<bool>*> torn{nullptr};
};

constexpr size_t max_guarded = 256;
guarded_range guarded[max_guarded];
struct sigaction bus_before{};
uintptr_t page_bytes = 4096;

void on_sigbus(int sig, siginfo_t* info, void* context) {
  auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (auto& g : guarded) {
    auto begin = g.begin.load(std::memory_order_acquire);
    if (begin == 0 || addr < begin || addr >= g.end.load(std::memory_order_acquire))
      continue;
    auto page = reinterpret_cast<void*>(addr & ~(page_bytes - 1));
    if (::mmap(page, page_bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
        == MAP_FAILED)
      break;
    if (auto* torn = g.torn.load(std::memory_order_acquire))
      torn->store(true, std::memory_order_release);
    return;
  }
  if (bus_before.sa_flags & SA_SIGINFO) {
    if (bus_before.sa_sigaction != nullptr) {
      bus_before.sa_sigaction(sig, info, context);
      return;
    }
  } else if (bus_before.sa_handler != SIG_DFL && bus_before.sa_handler != SIG_IGN) {
    bus_before.sa_handler(sig);
    return;
  }
  // The default action: the faulting read runs again and ends the process.
  ::signal(SIGBUS, SIG_DFL);
}

void install_bus_guard() {
  static std::once_flag once;
  std::call_once(once, [] {
    page_bytes = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    struct sigaction sa{};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &bus_before);
  });
}

/// Guards [begin, begin + size): returns the slot, or -1 when every slot is taken.
int guard_range(const char* begin, size_t size, std::atomic<bool>* torn) {
  install_bus_guard();
  for (size_t i = 0; i < max_guarded; ++i) {
    bool expected = false;
    if (!guarded[i].used.compare_exchange_strong(expected, true))
      continue;
    auto b = reinterpret_cast<uintptr_t>(begin);
    guarded[i].torn.store(torn, std::memory_order_release);
    guarded[i].end.store(b + size, std::memory_order_release);
    guarded[i].begin.store(b, std::memory_order_release);
    return static_cast<int>(i);
  }
  return -1;
}

void unguard_range(int slot) {
  if (slot < 0)
    return;
  guarded[slot].begin.store(0, std::memory_order_release);
  guarded[slot].end.store(0, std::memory_order_release);
  guarded[slot].torn.store(nullptr, std::memory_order_release);
  guarded[slot].used.store(false, std::memory_order_release);
}

/// A read-only mapping of a segment file, guarded: shared by the reader and the windows it
/// handed out, unmapped once the last of them lets go.
class segment_mapping final : public external_bytes {
public:
  segment_mapping(char* base, size_t length) : base_(base), length_(length) {
    slot_ = guard_range(base, length, &torn_);
  }
  ~segment_mapping() override {
    unguard_range(slot_);
    ::munmap(base_, length_);
  }
  bool intact() const override { return !torn_.load(std::memory_order_acquire); }
  bool guarded() const { return slot_ >= 0; }
  const char* base() const { return base_; }
  size_t length() const { return length_; }

private:
  char* base_;
  size_t length_;
  int slot_ = -1;
  std::atomic<bool> torn_{false};
};

/// How much of a file is mapped at least: a segment's usual size (storage::blob_store's
/// 64 MiB), so that an active segment growing under its mapping is not mapped again (pages
/// past the file's end are never read: every read checks the range against the file first).
constexpr uint64_t min_mapping = uint64_t{64} << 20;

/// Ranges remembered per file (read_blob_file's "seen").
constexpr size_t max_seen_ranges = 64;

caf::expected<payload_buffer> read_copy(const blob_file_ref& ref, std::vector<char>& spare) {
  auto bytes = read_blob_file(ref, std::move(spare));
  if (!bytes)
    return bytes.error();
  return payload_buffer{std::move(*bytes)};
}

} // namespace

struct blob_file_reader::state {
  struct open_file {
    int fd = -1;
    std::shared_ptr<segment_mapping> mapping;
    std::chrono::steady_clock::time_point used;
    /// Ranges (offset, size) read from this file, most recent last: a range read again is
    /// read in place.
    std::vector<std::pair<uint64_t, uint64_t>> seen;
  };
  size_t max_files;
  uint64_t in_place = 0;
  std::unordered_map<std::string, open_file> files;

  void drop(std::unordered_map<std::string, open_file>::iterator i) {
    ::close(i->second.fd);
    files.erase(i);
  }
};

blob_file_reader::blob_file_reader(size_t max_files) : st_(std::make_unique<state>()) {
  install_bus_guard();
  st_->max_files = std::max<size_t>(1, max_files);
}

blob_file_reader::~blob_file_reader() {
  for (auto& [path, f] : st_->files)
    ::close(f.fd);
}

size_t blob_file_reader::files() const { return st_->files.size(); }

size_t blob_file_reader::release_idle(std::chrono::steady_clock::duration idle) {
  auto now = std::chrono::steady_clock::now();
  for (auto i = st_->files.begin(); i != st_->files.end();) {
    auto next = std::next(i);
    if (now - i->second.used >= idle)
      st_->drop(i);
    i = next;
  }
  return st_->files.size();
}

size_t blob_file_reader::in_place() const { return st_->in_place; }

caf::expected<payload_buffer> blob_file_reader::read(const blob_file_ref& ref,
                                                     std::vector<char>& spare) {
  if (!valid_blob_file_path(ref.path))
    return bad_path(ref.path);
  auto& files = st_->files;
  for (int attempt = 0;; ++attempt) {
    auto i = files.find(ref.path);
    bool fresh = i == files.end();
    if (fresh) {
      uint64_t ignored = 0;
      auto fd = open_segment(ref.path, ignored);
      if (!fd)
        return fd.error();
      if (files.size() >= st_->max_files)
        st_->drop(std::min_element(files.begin(), files.end(), [](const auto& a, const auto& b) {
          return a.second.used < b.second.used;
        }));
      i = files.emplace(ref.path, state::open_file{*fd, nullptr, {}, {}}).first;
    }
    auto& f = i->second;
    struct stat st{};
    if (::fstat(f.fd, &st) != 0) {
      auto err = make_error(errc::storage_error, "cannot stat blob segment " + ref.path + ": "
                                                   + sys_reason());
      st_->drop(i);
      return err;
    }
    auto file_size = static_cast<uint64_t>(st.st_size);
    if (ref.offset > file_size || file_size - ref.offset < ref.size) {
      if (!fresh) { // the name may be another file's now
        st_->drop(i);
        continue;
      }
      return outside(ref, file_size);
    }
    auto range = std::make_pair(ref.offset, ref.size);
    auto seen = std::find(f.seen.begin(), f.seen.end(), range);
    if (seen == f.seen.end()) {
      // First read of these bytes: a copy through the kept descriptor. (Touching them in
      // the mapping would cost more than the copy: a page-table entry per 4 KiB page, about
      // 0.5 ms for a 940 KB blob on the VMs here against 0.11-0.18 ms for pread and hash.)
      auto copy = read_range(f.fd, ref, std::move(spare));
      if (!copy) {
        st_->drop(i);
        if (!fresh && attempt == 0 && is(copy.error(), errc::corrupt_data))
          continue; // a file kept open whose name another file took since: open it afresh
        return copy.error();
      }
      if (f.seen.size() >= max_seen_ranges)
        f.seen.erase(f.seen.begin());
      f.seen.push_back(range);
      f.used = std::chrono::steady_clock::now();
      if (st.st_nlink == 0)
        st_->drop(i);
      return payload_buffer{std::move(*copy)};
    }
    // Read before: most recent last.
    std::rotate(seen, seen + 1, f.seen.end());
    if (!f.mapping || !f.mapping->intact() || ref.offset + ref.size > f.mapping->length()) {
      auto length = std::max<uint64_t>(file_size, min_mapping);
      length = (length + page_bytes - 1) / page_bytes * page_bytes;
      void* base = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, f.fd, 0);
      if (base == MAP_FAILED) {
        st_->drop(i);
        return read_copy(ref, spare); // cannot map here: read it as before
      }
      auto m = std::make_shared<segment_mapping>(static_cast<char*>(base), length);
      if (!m->guarded()) {
        m.reset();
        st_->drop(i);
        return read_copy(ref, spare);
      }
      f.mapping = std::move(m);
    }
    const char* bytes = f.mapping->base() + ref.offset;
    if (comb::xxh3_64(bytes, ref.size) != ref.xxh3 || !f.mapping->intact()) {
      st_->drop(i);
      if (!fresh && attempt == 0)
        continue; // a file kept open whose name another file took since: open it afresh
      return mismatch(ref);
    }
    payload_buffer out{f.mapping, bytes, ref.size};
    ++st_->in_place;
    f.used = std::chrono::steady_clock::now();
    if (st.st_nlink == 0)
      st_->drop(i); // retired and unlinked: nothing will name it again
    return out;
  }
}

} // namespace comb::runtime
