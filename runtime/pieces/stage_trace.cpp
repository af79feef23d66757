// comb::runtime::stage_trace: the marks' file, mapped shared (see stage_trace.hpp).
#include "runtime/pieces/stage_trace.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

namespace comb::runtime::stage_trace {

namespace {

struct entry {
  uint64_t ns;
  uint64_t id;
  uint32_t tid;
  char stage[20];
};
static_assert(sizeof(entry) == 40);

constexpr size_t capacity = size_t{1} << 18;

struct marks {
  entry* entries = nullptr;
  std::atomic<size_t> next{0};
};

marks* the_marks() {
  static marks* m = []() -> marks* {
    const char* prefix = std::getenv("COMB_STAGE_TRACE");
    if (!prefix || !*prefix)
      return nullptr;
    auto path = std::string{prefix} + "." + std::to_string(::getpid());
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
      return nullptr;
    auto bytes = capacity * sizeof(entry);
    void* p = ::ftruncate(fd, static_cast<off_t>(bytes)) == 0
                ? ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                : MAP_FAILED;
    ::close(fd);
    if (p == MAP_FAILED)
      return nullptr;
    static marks instance;
    instance.entries = static_cast<entry*>(p);
    return &instance;
  }();
  return m;
}

} // namespace

bool on() noexcept {
  return the_marks() != nullptr;
}

void mark(const char* stage, uint64_t id) noexcept {
  auto* m = the_marks();
  if (!m)
    return;
  auto i = m->next.fetch_add(1, std::memory_order_relaxed);
  if (i >= capacity)
    return;
  thread_local uint32_t tid = static_cast<uint32_t>(::syscall(SYS_gettid));
  auto& e = m->entries[i];
  e.id = id;
  e.tid = tid;
  std::strncpy(e.stage, stage, sizeof(e.stage) - 1);
  e.ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count());
}

} // namespace comb::runtime::stage_trace
