// comb::kernels::detail::cpu_pool: a fixed set of workers woken per region through a
// generation counter (condition variable after a short spin).
#include "kernels/detail/cpu_pool.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

namespace comb::kernels::detail {

namespace {

thread_local bool inside_region = false;

class pool {
public:
  explicit pool(int threads) : threads_(threads) {
    for (int i = 1; i < threads; ++i)
      workers_.emplace_back([this] { loop(); });
  }

  ~pool() {
    {
      std::lock_guard<std::mutex> g{mtx_};
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_)
      t.join();
  }

  int threads() const {
    return threads_;
  }

  void run(int64_t chunks, const std::function<void(int64_t)>& fn) {
    std::lock_guard<std::mutex> region{region_mtx_};
    {
      std::lock_guard<std::mutex> g{mtx_};
      // Park `next_` out of range first: a worker late from the last region must not claim a
      // chunk of this one before fn_ and chunks_ are set.
      next_.store(int64_t{1} << 60);
      fn_ = &fn;
      chunks_ = chunks;
      done_.store(0);
      next_.store(0);
      ++generation_;
    }
    cv_.notify_all();
    work();
    while (done_.load(std::memory_order_acquire) != chunks)
      std::this_thread::yield();
    std::lock_guard<std::mutex> g{mtx_};
    fn_ = nullptr;
  }

private:
  void work() {
    inside_region = true;
    for (int64_t c; (c = next_.fetch_add(1)) < chunks_.load();) {
      (*fn_.load())(c);
      done_.fetch_add(1, std::memory_order_release);
    }
    inside_region = false;
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      std::unique_lock<std::mutex> lk{mtx_};
      cv_.wait(lk, [&] { return generation_ != seen; });
      seen = generation_;
      if (stop_)
        return;
      if (!fn_)
        continue;
      lk.unlock();
      work();
    }
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex region_mtx_;
  std::mutex mtx_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::atomic<const std::function<void(int64_t)>*> fn_{nullptr};
  std::atomic<int64_t> chunks_{0};
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> done_{0};
};

int default_threads() {
  if (const char* e = std::getenv("COMB_KERNEL_THREADS")) {
    int n = std::atoi(e);
    if (n >= 1 && n <= 256)
      return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::mutex pool_mtx;
std::atomic<int> wanted{0};
std::shared_ptr<pool> the_pool;

std::shared_ptr<pool> get_pool() {
  std::lock_guard<std::mutex> g{pool_mtx};
  int n = wanted.load();
  if (n == 0)
    wanted.store(n = default_threads());
  if (!the_pool || the_pool->threads() != n)
    the_pool = std::make_shared<pool>(n);
  return the_pool;
}

} // namespace

int cpu_threads() {
  int n = wanted.load();
  return n ? n : get_pool()->threads();
}

void set_cpu_threads(int n) {
  wanted.store(std::max(1, n));
}

void parallel_range(int64_t n, int64_t grain,
                    const std::function<void(int64_t, int64_t)>& fn) {
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
  auto p = get_pool();
  std::function<void(int64_t)> chunk = [&](int64_t c) {
    int64_t b = c * per;
    fn(b, std::min(n, b + per));
  };
  p->run(chunks, chunk);
}

} // namespace comb::kernels::detail
