// kernels.cpu_pool: the CPU pool's fork-join (every part runs once, nested calls run inline)
// and its placement: a worker that takes a part runs pinned to one CPU, not the caller's.
#include "kernels/detail/cpu_pool.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>
#include <vector>

#include <sched.h>

using namespace comb::kernels;

TEST_SUITE("kernels.cpu_pool") {
  TEST_CASE("every part runs once; a nested call runs inline") {
    detail::set_cpu_threads(2);
    std::vector<std::atomic<int>> runs(1000);
    detail::parallel_range(1000, 7, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        runs[static_cast<size_t>(i)].fetch_add(1);
    });
    for (auto& r : runs)
      CHECK(r.load() == 1);
    std::atomic<int> inner{0};
    detail::parallel_for(4,
                         [&](int) { detail::parallel_for(3, [&](int) { inner.fetch_add(1); }); });
    CHECK(inner.load() == 12);
    detail::set_cpu_threads(0);
  }

  TEST_CASE("a worker runs pinned to a CPU other than the caller's") {
    cpu_set_t all;
    REQUIRE(sched_getaffinity(0, sizeof all, &all) == 0);
    if (CPU_COUNT(&all) < 2) {
      MESSAGE("one CPU only: placement not checked");
      return;
    }
    detail::set_cpu_threads(2);
    detail::parallel_for(2, [](int) {}); // the pool, made while the caller may use every CPU
    int mine = -1;
    for (int c = 0; c < CPU_SETSIZE && mine < 0; ++c)
      if (CPU_ISSET(c, &all))
        mine = c;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(mine, &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    // Each part waits until the other has started, so the two run on two threads: the caller
    // and the worker (either may claim either part; a worker still spinning from the region
    // above may claim part 0). The part that is not on the caller's thread records where it is.
    std::atomic<int> arrived{0};
    std::thread::id caller = std::this_thread::get_id(), ran_on;
    cpu_set_t worker_set;
    CPU_ZERO(&worker_set);
    int worker_cpu = -1;
    detail::parallel_for(2, [&](int) {
      if (std::this_thread::get_id() != caller) {
        ran_on = std::this_thread::get_id();
        sched_getaffinity(0, sizeof worker_set, &worker_set);
        worker_cpu = sched_getcpu();
      }
      arrived.fetch_add(1);
      while (arrived.load() < 2)
        std::this_thread::yield();
    });
    sched_setaffinity(0, sizeof all, &all);
    detail::set_cpu_threads(0);
    CHECK(ran_on != caller);
    CHECK(CPU_COUNT(&worker_set) == 1);
    CHECK(!CPU_ISSET(mine, &worker_set));
    CHECK(worker_cpu != mine);
  }
}
