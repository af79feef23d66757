// Fork-join pool for the NHWC vision ops; see task_pool.hpp.
#include "kernels/detail/task_pool.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace comb::kernels::detail {

namespace {

/// One fork-join: parts are claimed through `next` and counted in `done`. Shared with the
/// workers by shared_ptr, so a worker that wakes late holds a finished job, finds no part
/// left and drops it; the caller never waits for a worker that has nothing to do.
struct job {
  const std::function<void(int)>* fn = nullptr;
  int parts = 0;
  std::atomic<int> next{0};
  std::atomic<int> done{0};

  void work() {
    for (int p; (p = next.fetch_add(1)) < parts;) {
      (*fn)(p);
      done.fetch_add(1, std::memory_order_release);
    }
  }
};

class pool {
public:
  explicit pool(int threads) {
    for (int i = 1; i < threads; ++i)
      workers_.emplace_back([this] { loop(); });
  }

  ~pool() {
    stop_.store(true);
    generation_.fetch_add(1);
    generation_.notify_all();
    for (auto& t : workers_)
      t.join();
  }

  int size() const {
    return static_cast<int>(workers_.size()) + 1;
  }

  void run(int parts, const std::function<void(int)>& fn) {
    auto j = std::make_shared<job>();
    j->fn = &fn;
    j->parts = parts;
    current_.store(j);
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
    while (true) {
      // Spin a little before sleeping: fork-joins come in quick succession in a forward pass.
      uint64_t g = seen;
      for (int i = 0; i < 4000 && (g = generation_.load(std::memory_order_acquire)) == seen; ++i)
        __builtin_ia32_pause();
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

  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<std::shared_ptr<job>> current_;
  std::atomic<bool> stop_{false};
};

std::mutex pool_mutex;
std::unique_ptr<pool> the_pool;
int wanted_threads = 0;

} // namespace

int vision_threads() {
  std::lock_guard<std::mutex> guard(pool_mutex);
  if (wanted_threads <= 0)
    wanted_threads = std::max(1u, std::thread::hardware_concurrency());
  return wanted_threads;
}

void set_vision_threads(int n) {
  std::lock_guard<std::mutex> guard(pool_mutex);
  wanted_threads = std::max(1, n);
  the_pool.reset();
}

void parallel_for(int parts, const std::function<void(int)>& fn) {
  if (parts <= 0)
    return;
  std::lock_guard<std::mutex> guard(pool_mutex);
  if (wanted_threads <= 0)
    wanted_threads = std::max(1u, std::thread::hardware_concurrency());
  if (parts == 1 || wanted_threads == 1) {
    for (int p = 0; p < parts; ++p)
      fn(p);
    return;
  }
  if (!the_pool || the_pool->size() != wanted_threads)
    the_pool = std::make_unique<pool>(wanted_threads);
  the_pool->run(parts, fn);
}

} // namespace comb::kernels::detail
