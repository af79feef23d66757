// comb::runtime shared-memory pieces (see shm_pieces.hpp).
#include "runtime/pieces/shm_pieces.hpp"

#include "base/errc.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace comb::runtime {

namespace {

constexpr std::string_view prefix = "comb-pieces-";
constexpr uint64_t align = 64;

uint64_t round_up(uint64_t n) {
  return (n + align - 1) / align * align;
}

std::string sys_error(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

uint64_t random_u64() {
  uint64_t x = 0;
  if (getrandom(&x, sizeof x, 0) != static_cast<ssize_t>(sizeof x))
    x = static_cast<uint64_t>(::getpid()) * 0x9e3779b97f4a7c15ull
        ^ static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&x));
  return x;
}

caf::error region_mismatch(const shm_ref& ref) {
  return make_error(errc::protocol_error,
                    "shared-memory piece: the region at " + std::to_string(ref.offset)
                      + " of segment " + ref.segment
                      + " no longer holds the task's bytes (ticket or size differ)");
}

/// Removes /dev/shm/comb-pieces-<pid>-* of processes that are gone (a node killed with -9
/// cannot unlink its segment).
void remove_stale_segments() {
  auto* dir = ::opendir("/dev/shm");
  if (!dir)
    return;
  while (auto* e = ::readdir(dir)) {
    std::string_view n = e->d_name;
    if (n.substr(0, prefix.size()) != prefix || !valid_shm_segment_name("/" + std::string{n}))
      continue;
    auto rest = n.substr(prefix.size());
    auto pid = std::stol(std::string{rest.substr(0, rest.find('-'))});
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      ::shm_unlink(("/" + std::string{n}).c_str());
  }
  ::closedir(dir);
}

} // namespace

bool valid_shm_segment_name(std::string_view name) {
  if (name.size() < 2 || name[0] != '/')
    return false;
  name.remove_prefix(1);
  if (name.substr(0, prefix.size()) != prefix)
    return false;
  name.remove_prefix(prefix.size());
  auto dash = name.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash > 10)
    return false;
  for (size_t i = 0; i < dash; ++i)
    if (name[i] < '0' || name[i] > '9')
      return false;
  auto hex = name.substr(dash + 1);
  if (hex.size() != 16)
    return false;
  for (char c : hex)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  return true;
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1" || host == "[::1]")
    return true;
  in_addr a{};
  if (::inet_pton(AF_INET, std::string{host}.c_str(), &a) == 1)
    return (ntohl(a.s_addr) >> 24) == 127;
  return false;
}

// --- shm_arena ---------------------------------------------------------------------------

caf::expected<std::shared_ptr<shm_arena>> shm_arena::create(size_t capacity) {
  remove_stale_segments();
  capacity = round_up(std::max<size_t>(capacity, 4096));
  std::shared_ptr<shm_arena> a{new shm_arena};
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(random_u64()));
  a->name_ = "/" + std::string{prefix} + std::to_string(::getpid()) + "-" + hex;
  int fd = ::shm_open(a->name_.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    return make_error(errc::unsupported, sys_error("shared-memory pieces: shm_open(" + a->name_
                                                   + ")"));
  a->linked_ = true;
  if (::ftruncate(fd, static_cast<off_t>(capacity)) != 0) {
    auto msg = sys_error("shared-memory pieces: ftruncate(" + a->name_ + ")");
    ::close(fd);
    return make_error(errc::unsupported, msg); // the destructor unlinks the name
  }
  void* p = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED)
    return make_error(errc::unsupported, sys_error("shared-memory pieces: mmap(" + a->name_ + ")"));
  a->base_ = static_cast<char*>(p);
  a->capacity_ = capacity;
  a->free_.emplace(0, capacity);
  a->next_ticket_ = random_u64() | 1;
  return a;
}

shm_arena::~shm_arena() {
  if (base_)
    ::munmap(base_, capacity_);
  retire();
}

void shm_arena::retire() {
  if (linked_)
    ::shm_unlink(name_.c_str());
  linked_ = false;
}

std::optional<shm_ref> shm_arena::put(const char* data, size_t size) {
  auto r = reserve(size);
  if (r && size > 0)
    std::memcpy(r->second, data, size);
  return r ? std::optional<shm_ref>{std::move(r->first)} : std::nullopt;
}

std::optional<std::pair<shm_ref, char*>> shm_arena::reserve(size_t size) {
  uint64_t need = round_up(shm_region_header + uint64_t{size});
  for (auto i = free_.begin(); i != free_.end(); ++i) {
    if (i->second < need)
      continue;
    auto off = i->first;
    auto len = i->second;
    free_.erase(i);
    if (len > need)
      free_.emplace(off + need, len - need);
    taken_.emplace(off, need);
    used_ += need;
    shm_ref r;
    r.segment = name_;
    r.offset = off;
    r.size = size;
    r.ticket = next_ticket_++;
    uint64_t head[2] = {r.ticket, r.size};
    std::memcpy(base_ + off, head, sizeof head);
    return std::pair<shm_ref, char*>{std::move(r), base_ + off + shm_region_header};
  }
  return std::nullopt;
}

void shm_arena::release(const shm_ref& ref) {
  if (ref.segment != name_)
    return;
  auto t = taken_.find(ref.offset);
  if (t == taken_.end())
    return;
  auto off = t->first;
  auto len = t->second;
  taken_.erase(t);
  used_ -= len;
  // Clear the ticket: a late reader of this region gets a clear mismatch.
  std::memset(base_ + off, 0, sizeof(uint64_t));
  auto next = free_.lower_bound(off);
  if (next != free_.end() && off + len == next->first) {
    len += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {
      prev->second += len;
      return;
    }
  }
  free_.emplace(off, len);
}

// --- shm_reader --------------------------------------------------------------------------

namespace {

/// The ticket and size in front of a region, as they are now.
bool region_head_is(const char* head, uint64_t ticket, uint64_t size) {
  // Read after every use of the bytes (the writer stores the ticket before new bytes).
  std::atomic_thread_fence(std::memory_order_acquire);
  uint64_t h[2];
  std::memcpy(h, head, sizeof h);
  return h[0] == ticket && h[1] == size;
}

/// A region read in place: holds the segment's mapping; intact() while the region still
/// holds the task's ticket and size.
class shm_window final : public external_bytes {
public:
  shm_window(std::shared_ptr<const void> seg, const char* head, uint64_t ticket, uint64_t size)
    : seg_(std::move(seg)), head_(head), ticket_(ticket), size_(size) {}
  bool intact() const override { return region_head_is(head_, ticket_, size_); }

private:
  std::shared_ptr<const void> seg_;
  const char* head_;
  uint64_t ticket_;
  uint64_t size_;
};

} // namespace

shm_reader::segment_map::~segment_map() {
  if (base)
    ::munmap(const_cast<char*>(base), size);
}

shm_reader::~shm_reader() = default;

caf::expected<const shm_reader::mapping*> shm_reader::map(const std::string& name) {
  for (auto i = maps_.begin(); i != maps_.end(); ++i)
    if (i->name == name) {
      maps_.splice(maps_.begin(), maps_, i);
      return &maps_.front();
    }
  // A new segment: its writer may have retired others (a lost connection); their names are
  // gone, and nothing will be read from them again (windows into them keep their mapping).
  for (auto i = maps_.begin(); i != maps_.end();) {
    if (::access(("/dev/shm" + i->name).c_str(), F_OK) != 0 && errno == ENOENT)
      i = maps_.erase(i);
    else
      ++i;
  }
  int fd = ::shm_open(name.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    return make_error(errc::unsupported,
                      sys_error("shared-memory pieces: the compute process cannot open "
                                "segment "
                                + name + " (not the same host or user?): shm_open"));
  struct stat s{};
  if (::fstat(fd, &s) != 0) {
    auto msg = sys_error("shared-memory pieces: fstat(" + name + ")");
    ::close(fd);
    return make_error(errc::unsupported, msg);
  }
  if (s.st_uid != ::geteuid()) {
    ::close(fd);
    return make_error(errc::unsupported,
                      "shared-memory pieces: segment " + name + " belongs to user "
                        + std::to_string(s.st_uid) + ", not to this process's user "
                        + std::to_string(::geteuid()));
  }
  auto size = static_cast<size_t>(s.st_size);
  void* p = size ? ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
  ::close(fd);
  if (p == MAP_FAILED)
    return make_error(errc::unsupported, sys_error("shared-memory pieces: mmap(" + name + ")"));
  maps_.push_front(mapping{name, std::make_shared<const segment_map>(static_cast<const char*>(p),
                                                                     size)});
  while (maps_.size() > max_)
    maps_.pop_back();
  return &maps_.front();
}

caf::expected<std::pair<const shm_reader::mapping*, const char*>>
shm_reader::locate(const shm_ref& ref) {
  if (!valid_shm_segment_name(ref.segment))
    return make_error(errc::protocol_error, "shared-memory piece names segment '" + ref.segment
                                              + "', which is not of the form "
                                                "/comb-pieces-<pid>-<16 hex digits>");
  auto m = map(ref.segment);
  if (!m)
    return m.error();
  auto base = (*m)->seg->base;
  auto seg = (*m)->seg->size;
  if (ref.offset % align != 0 || ref.offset > seg || seg - ref.offset < shm_region_header
      || seg - ref.offset - shm_region_header < ref.size)
    return make_error(errc::protocol_error,
                      "shared-memory piece: region at " + std::to_string(ref.offset) + " of "
                        + std::to_string(ref.size) + " bytes lies outside segment "
                        + ref.segment + " of " + std::to_string(seg) + " bytes");
  auto head = base + ref.offset;
  if (!region_head_is(head, ref.ticket, ref.size))
    return region_mismatch(ref);
  return std::make_pair(*m, head);
}

caf::expected<std::vector<char>> shm_reader::read(const shm_ref& ref, std::vector<char> buffer) {
  auto at = locate(ref);
  if (!at)
    return at.error();
  auto head = at->second;
  auto& out = buffer;
  out.clear(); // keeps its memory
  out.reserve(ref.size);
  auto* from = head + shm_region_header;
  out.insert(out.end(), from, from + ref.size); // no zeroing first, unlike resize()
  if (!region_head_is(head, ref.ticket, ref.size))
    return region_mismatch(ref);
  return std::move(buffer);
}

caf::expected<payload_buffer> shm_reader::view(const shm_ref& ref) {
  auto at = locate(ref);
  if (!at)
    return at.error();
  auto head = at->second;
  auto window = std::make_shared<const shm_window>(at->first->seg, head, ref.ticket, ref.size);
  return payload_buffer{std::move(window), head + shm_region_header,
                        static_cast<size_t>(ref.size)};
}

} // namespace comb::runtime
