#include "base/sync_point.hpp"

#ifdef COMB_SYNC_POINTS

#  include <atomic>
#  include <csignal>
#  include <cstdlib>
#  include <cstring>
#  include <string>

#  include <unistd.h>

namespace comb {

namespace {
const char* armed_point() {
  static const char* armed = std::getenv("COMB_KILL_AT");
  return armed;
}
} // namespace

bool sync_point_armed(const char* name) {
  const char* armed = armed_point();
  return armed && std::strcmp(armed, name) == 0;
}

void sync_point(const char* name) {
  if (!sync_point_armed(name))
    return;
  static const long after = [] {
    const char* n = std::getenv("COMB_KILL_AFTER");
    return n ? std::atol(n) : 1L;
  }();
  static const int sig = [] {
    const char* s = std::getenv("COMB_KILL_SIGNAL");
    return s ? std::atoi(s) : SIGKILL;
  }();
  static std::atomic<long> hits{0};
  if (++hits == after || (sig == SIGKILL && hits > after))
    ::kill(::getpid(), sig);
}

} // namespace comb

#endif
