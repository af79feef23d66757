// kernels.cpu_pool: the CPU pool's fork-join (every part runs once, nested calls run inline)
// and its placement: a worker that takes a part runs pinned to one CPU, not the caller's.
#include "kernels/detail/cpu_pool.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <sched.h>

using namespace comb::kernels;

namespace {

/// Runs a region of two parts, each waiting until the other has started, so that the two
/// run on the caller and a worker, on the caller's first CPU only (the caller is held
/// there); returns the worker's allowed CPUs as it runs its part.
cpu_set_t worker_cpus_off(int mine, const cpu_set_t& all) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(mine, &one);
  REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
  std::atomic<int> arrived{0};
  std::thread::id caller = std::this_thread::get_id();
  cpu_set_t worker_set;
  CPU_ZERO(&worker_set);
  detail::parallel_for(2, [&](int) {
    if (std::this_thread::get_id() != caller)
      sched_getaffinity(0, sizeof worker_set, &worker_set);
    arrived.fetch_add(1);
    while (arrived.load() < 2)
      std::this_thread::yield();
  });
  sched_setaffinity(0, sizeof all, &all);
  return worker_set;
}

} // namespace

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

  TEST_CASE("wake_workers wakes a sleeping worker, which spins and sleeps again") {
    detail::set_cpu_threads(2);
    detail::parallel_for(2, [](int) {}); // the pool exists
    // Polls until `pred` holds (a loaded machine may take long to run the worker).
    auto eventually = [](auto pred) {
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
      while (!pred() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds{1});
      return pred();
    };
    REQUIRE(eventually([] { return detail::sleeping_workers() == 1; }));
    // Spinning for up to 2 s: long enough to be seen awake on a loaded machine.
    detail::wake_workers(2'000'000);
    CHECK(eventually([] { return detail::sleeping_workers() == 0; }));
    // A region while it spins, and a wake from inside a region (ignored, no deadlock).
    std::atomic<int> parts{0};
    detail::parallel_for(4, [&](int) {
      detail::wake_workers();
      parts.fetch_add(1);
    });
    CHECK(parts.load() == 4);
    // After the spin it sleeps again.
    CHECK(eventually([] { return detail::sleeping_workers() == 1; }));
    // Wakes from another thread while regions run: every part still runs once.
    std::atomic<bool> stop{false};
    std::thread waker{[&] {
      while (!stop.load())
        detail::wake_workers(100);
    }};
    std::vector<std::atomic<int>> runs(500);
    for (int round = 0; round < 50; ++round)
      detail::parallel_range(500, 3, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
          runs[static_cast<size_t>(i)].fetch_add(1);
      });
    stop.store(true);
    waker.join();
    for (auto& r : runs)
      CHECK(r.load() == 50);
    // One thread: nothing to wake.
    detail::set_cpu_threads(1);
    detail::wake_workers();
    detail::set_cpu_threads(0);
  }

  TEST_CASE("by default the pool has one thread per CPU the process may run on") {
    if (std::getenv("COMB_KERNEL_THREADS")) {
      MESSAGE("skipped: COMB_KERNEL_THREADS sets the count");
      return;
    }
    cpu_set_t all;
    REQUIRE(sched_getaffinity(0, sizeof all, &all) == 0);
    int on_one = 0;
    std::thread t{[&] {
      cpu_set_t one;
      CPU_ZERO(&one);
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &all)) {
          CPU_SET(c, &one);
          break;
        }
      REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
      detail::set_cpu_threads(0); // the default, as this thread sees it (`taskset -c N`)
      on_one = detail::cpu_threads();
    }};
    t.join();
    CHECK(on_one == 1);
    detail::set_cpu_threads(0);
    CHECK(detail::cpu_threads()
          == std::min(CPU_COUNT(&all), static_cast<int>(std::thread::hardware_concurrency())));
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

  TEST_CASE("set_worker_placement overrides COMB_KERNEL_PIN until it is reset") {
    cpu_set_t all;
    REQUIRE(sched_getaffinity(0, sizeof all, &all) == 0);
    if (CPU_COUNT(&all) < 2) {
      MESSAGE("one CPU only: placement not checked");
      return;
    }
    int mine = -1;
    for (int c = 0; c < CPU_SETSIZE && mine < 0; ++c)
      if (CPU_ISSET(c, &all))
        mine = c;
    detail::set_cpu_threads(2);
    const std::string from_env = detail::worker_placement();

    detail::set_worker_placement("0");
    CHECK(std::string{detail::worker_placement()}.find("left to the scheduler")
          != std::string::npos);
    detail::parallel_for(2, [](int) {}); // a new pool, made while the caller may use every CPU
    auto free_set = worker_cpus_off(mine, all);
    CHECK(CPU_COUNT(&free_set) == CPU_COUNT(&all));

    detail::set_worker_placement("1");
    CHECK(std::string{detail::worker_placement()} == "pinned off the caller's CPU");
    detail::parallel_for(2, [](int) {});
    auto pinned_set = worker_cpus_off(mine, all);
    CHECK(CPU_COUNT(&pinned_set) == 1);
    CHECK(!CPU_ISSET(mine, &pinned_set));

    detail::set_worker_placement(nullptr);
    CHECK(std::string{detail::worker_placement()} == from_env);
    const char* e = std::getenv("COMB_KERNEL_PIN");
    CHECK((from_env.find("left to the scheduler") != std::string::npos)
          == (e != nullptr && std::strcmp(e, "0") == 0));
    detail::set_cpu_threads(0);
  }
}
