// comb::kernels::detail::cpu_pool: a fixed set of workers woken per region through a
// generation counter; see cpu_pool.hpp.
#include "kernels/detail/cpu_pool.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace comb::kernels::detail {

namespace {

thread_local bool inside_region = false;

/// Set by park_workers(), cleared when a region starts: idle workers stop spinning.
std::atomic<bool> park_request{false};

/// One fork-join: parts are claimed through `next` and counted in `done`. Shared with the
/// workers by shared_ptr, so a worker that wakes late holds a finished job, finds no part
/// left and drops it; the caller never waits for a worker that has nothing to do.
struct job {
  const std::function<void(int64_t)>* fn = nullptr;
  int64_t parts = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};

  void work() {
    inside_region = true;
    for (int64_t p; (p = next.fetch_add(1, std::memory_order_relaxed)) < parts;) {
      (*fn)(p);
      done.fetch_add(1, std::memory_order_release);
    }
    inside_region = false;
  }
};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

class pool {
public:
  explicit pool(int threads) : threads_(threads) {
    for (int i = 1; i < threads; ++i)
      workers_.emplace_back([this] { loop(); });
  }

  ~pool() {
    stop_.store(true);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (auto& t : workers_)
      t.join();
  }

  int threads() const { return threads_; }

  void run(int64_t parts, const std::function<void(int64_t)>& fn) {
    std::lock_guard<std::mutex> region{region_mtx_};
    auto j = std::make_shared<job>();
    j->fn = &fn;
    j->parts = parts;
    current_.store(j);
    park_request.store(false, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    j->work();
    // Only parts a worker has claimed remain; wait for those.
    while (j->done.load(std::memory_order_acquire) != parts)
      std::this_thread::yield();
  }

private:
  void loop() {
    uint64_t seen = 0; // the generation at construction
    for (;;) {
      // Spin a little before sleeping: regions come in quick succession in a forward pass.
      // Not while another pool (OpenBLAS) has the cores: park_workers() cuts the spin short.
      uint64_t g = seen;
      for (int i = 0; i < 4000 && (g = generation_.load(std::memory_order_acquire)) == seen
                      && !park_request.load(std::memory_order_relaxed);
           ++i)
        cpu_relax();
      if (g == seen) {
        generation_.wait(seen);
        g = generation_.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop_.load())
        return;
      if (auto j = current_.load())
        j->work();
    }
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex region_mtx_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<std::shared_ptr<job>> current_;
  std::atomic<bool> stop_{false};
};

int default_threads() {
  if (const char* e = std::getenv("COMB_KERNEL_THREADS")) {
    int n = std::atoi(e);
    if (n >= 1 && n <= 256)
      return n;
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::mutex pool_mtx;
std::atomic<int> wanted{0};
std::shared_ptr<pool> the_pool;

/// The pool for the wanted thread count; a region in flight keeps the old one alive.
std::shared_ptr<pool> get_pool() {
  std::lock_guard<std::mutex> g{pool_mtx};
  int n = wanted.load();
  if (n == 0)
    wanted.store(n = default_threads());
  if (!the_pool || the_pool->threads() != n)
    the_pool = std::make_shared<pool>(n);
  return the_pool;
}

/// Runs parts 0..parts-1, inline when one thread would do.
void fork_join(int64_t parts, const std::function<void(int64_t)>& fn) {
  if (parts <= 0)
    return;
  if (parts == 1 || inside_region || cpu_threads() == 1) {
    for (int64_t p = 0; p < parts; ++p)
      fn(p);
    return;
  }
  get_pool()->run(parts, fn);
}

} // namespace

int cpu_threads() {
  int n = wanted.load();
  if (n)
    return n;
  std::lock_guard<std::mutex> g{pool_mtx};
  if (wanted.load() == 0)
    wanted.store(default_threads());
  return wanted.load();
}

void set_cpu_threads(int n) {
  wanted.store(n <= 0 ? default_threads() : n);
}

void park_workers() {
  if (!park_request.load(std::memory_order_relaxed))
    park_request.store(true, std::memory_order_relaxed);
}

void parallel_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0)
    return;
  grain = std::max<int64_t>(grain, 1);
  int threads = cpu_threads();
  if (threads == 1 || n <= grain || inside_region) {
    fn(0, n);
    return;
  }
  // A few chunks per thread so an unlucky thread (the machine is shared) does not stall all.
  int64_t chunks = std::min<int64_t>((n + grain - 1) / grain, int64_t{threads} * 4);
  int64_t per = (n + chunks - 1) / chunks;
  chunks = (n + per - 1) / per;
  fork_join(chunks, [&](int64_t c) {
    int64_t b = c * per;
    fn(b, std::min(n, b + per));
  });
}

void parallel_for(int parts, const std::function<void(int)>& fn) {
  fork_join(parts, [&](int64_t p) { fn(static_cast<int>(p)); });
}

} // namespace comb::kernels::detail
