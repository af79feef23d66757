// The TSC-based wall clock stays within a millisecond of the system clock, on every thread,
// across its re-anchoring.
#include "base/wall_clock.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

int64_t system_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

// Largest |wall_clock_ns - system clock| over `ms` milliseconds of samples.
int64_t worst_error(int ms) {
  int64_t worst = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds{ms};
  while (std::chrono::steady_clock::now() < until) {
    int64_t before = system_ns();
    int64_t ours = comb::wall_clock_ns();
    int64_t after = system_ns();
    // Compare with the nearer bound of the interval the reading was taken in.
    int64_t err = ours < before ? before - ours : ours > after ? ours - after : 0;
    worst = std::max(worst, err);
    // Time passing is what this test is about: samples spread over `ms` milliseconds (and
    // the clock's re-anchoring), not a wait for something else to happen.
    std::this_thread::sleep_for(std::chrono::microseconds{200});
  }
  return worst;
}

} // namespace

TEST_SUITE("base.wall_clock") {
  TEST_CASE("wall_clock_ns tracks the system clock on every thread") {
    CHECK(worst_error(350) < 1'000'000);
    std::vector<int64_t> errs(2);
    std::vector<std::thread> ts;
    for (size_t i = 0; i < errs.size(); ++i)
      ts.emplace_back([&errs, i] { errs[i] = worst_error(250); });
    for (auto& t : ts)
      t.join();
    for (auto e : errs)
      CHECK(e < 1'000'000);
  }

} // TEST_SUITE
