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
    fn_ = &fn;
    parts_ = parts;
    next_.store(0);
    pending_.store(static_cast<int>(workers_.size()));
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    work();
    // Wait for the workers to finish their share.
    while (pending_.load(std::memory_order_acquire) != 0)
      std::this_thread::yield();
  }

private:
  void work() {
    for (int p; (p = next_.fetch_add(1)) < parts_;)
      (*fn_)(p);
  }

  void loop() {
    uint64_t seen = 0; // the generation at construction; run() may already have moved on
    while (true) {
      // Spin a little before sleeping: fork-joins come in quick succession in a forward pass.
      uint64_t g = seen;
      for (int i = 0; i < 20000 && (g = generation_.load(std::memory_order_acquire)) == seen; ++i)
        __builtin_ia32_pause();
      if (g == seen) {
        generation_.wait(seen);
        g = generation_.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop_.load())
        return;
      work();
      pending_.fetch_sub(1, std::memory_order_release);
    }
  }

  std::vector<std::thread> workers_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int)>* fn_ = nullptr;
  int parts_ = 0;
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
