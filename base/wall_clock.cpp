#include "base/wall_clock.hpp"

#include <chrono>
#include <fstream>
#include <string>

#if defined(__x86_64__)
#  include <x86intrin.h>
#endif

namespace comb {

namespace {

int64_t system_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

#if defined(__x86_64__)
// The TSC counts at a constant rate in every power state on CPUs that say so.
bool invariant_tsc() {
  std::ifstream in{"/proc/cpuinfo"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0)
      return line.find(" constant_tsc") != std::string::npos
             && line.find(" nonstop_tsc") != std::string::npos;
  return false;
}

// One thread's anchor: at tsc0 the system clock read ns0; ns_per_tick from the last two
// anchors (0 until two anchors 20 ms or more apart exist).
struct anchor {
  uint64_t tsc0 = 0;
  int64_t ns0 = 0;
  double ns_per_tick = 0;
};

constexpr int64_t reanchor_ns = 100'000'000;
#endif

} // namespace

int64_t wall_clock_ns() {
#if defined(__x86_64__)
  static const bool usable = invariant_tsc();
  if (!usable)
    return system_ns();
  thread_local anchor a;
  uint64_t tsc = __rdtsc();
  if (a.ns_per_tick > 0) {
    auto elapsed = static_cast<int64_t>(static_cast<double>(tsc - a.tsc0) * a.ns_per_tick);
    if (elapsed >= 0 && elapsed < reanchor_ns)
      return a.ns0 + elapsed;
  }
  // (Re-)anchor: read the system clock and refine the rate over the interval since the
  // last anchor when it is long enough to be precise.
  int64_t ns = system_ns();
  if (a.tsc0 != 0 && tsc > a.tsc0 && ns - a.ns0 >= 20'000'000)
    a.ns_per_tick = static_cast<double>(ns - a.ns0) / static_cast<double>(tsc - a.tsc0);
  if (a.tsc0 == 0 || ns - a.ns0 >= 20'000'000 || a.ns_per_tick > 0) {
    a.tsc0 = tsc;
    a.ns0 = ns;
  }
  return ns;
#else
  return system_ns();
#endif
}

} // namespace comb
