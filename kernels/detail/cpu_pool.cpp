// comb::kernels::detail::cpu_pool: a fixed set of workers woken per region through a
// generation counter; see cpu_pool.hpp.
#include "kernels/detail/cpu_pool.hpp"

#include "base/cpu_set.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>

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

/// Where workers may run, from COMB_KERNEL_PIN: "0" anywhere (the scheduler decides),
/// "wake" sent to a CPU other than the caller's when woken from sleep and free to move once
/// running, otherwise (the default) each pinned to a CPU other than the caller's.
enum class placement { none, at_wake, pinned };

placement parse_placement(const char* e) {
  if (e && std::strcmp(e, "0") == 0)
    return placement::none;
  if (e && std::strcmp(e, "wake") == 0)
    return placement::at_wake;
  return placement::pinned;
}

/// set_worker_placement's choice (-1: none, COMB_KERNEL_PIN decides).
std::atomic<int> placement_override{-1};

placement placement_mode() {
  int o = placement_override.load(std::memory_order_relaxed);
  return o >= 0 ? static_cast<placement>(o) : parse_placement(std::getenv("COMB_KERNEL_PIN"));
}

class pool {
public:
  explicit pool(int threads)
    : threads_(threads), made_with_(placement_override.load()), mode_(placement_mode()),
      workers_state_(std::make_unique<worker_state[]>(static_cast<size_t>(threads))) {
    // The CPUs this process may use; placement only when each thread can have its own.
    CPU_ZERO(&allowed_);
    if (sched_getaffinity(0, sizeof allowed_, &allowed_) == 0)
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &allowed_))
          wake_cpus_.push_back(c);
    if (static_cast<int>(wake_cpus_.size()) < threads)
      wake_cpus_.clear();
    if (mode_ != placement::none)
      cpus_ = wake_cpus_;
    for (int i = 1; i < threads; ++i)
      workers_.emplace_back([this, i] { loop(workers_state_[static_cast<size_t>(i)]); });
  }

  ~pool() {
    stop_.store(true);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    for (auto& t : workers_)
      t.join();
  }

  int threads() const { return threads_; }
  /// The placement override this pool was made under (-1: the environment's choice).
  int made_with() const { return made_with_; }

  void run(int64_t parts, const std::function<void(int64_t)>& fn) {
    std::lock_guard<std::mutex> region{region_mtx_};
    place_workers();
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

  /// wake_workers(): wakes the sleeping workers onto a finished job (they find no part and
  /// spin until spin_us have passed or a region starts).
  void wake(int spin_us) {
    bool any = false;
    for (int i = 1; i < threads_; ++i)
      any = any || workers_state_[static_cast<size_t>(i)].asleep.load(std::memory_order_relaxed);
    if (!any)
      return;
    std::unique_lock<std::mutex> region{region_mtx_, std::try_to_lock};
    if (!region.owns_lock())
      return;
    if (mode_ == placement::none)
      steer_sleeping();
    else
      place_workers();
    wake_spin_until_.store(now_ns() + int64_t{spin_us} * 1000, std::memory_order_relaxed);
    park_request.store(false, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
  }

  int sleeping() const {
    int n = 0;
    for (int i = 1; i < threads_; ++i)
      n += workers_state_[static_cast<size_t>(i)].asleep.load(std::memory_order_relaxed) ? 1 : 0;
    return n;
  }

private:
  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
  }

  struct worker_state {
    /// Set while the worker sleeps on the futex.
    std::atomic<bool> asleep{false};
    /// Set by the caller when it narrowed the worker's CPUs for a wake; the worker widens
    /// them again once it runs.
    std::atomic<bool> steered{false};
  };

  /// Keeps workers off the caller's CPU. Left to itself, the scheduler of the 2-vCPU VMs
  /// here often runs the worker on the CPU the caller is on (busy with its share), after a
  /// wake from sleep and for whole runs of regions: the fork-join then runs serially, at
  /// about twice the time (MLP forward at load 3-4: 5.3-5.8 ms wall for 5.4-5.9 ms CPU, in
  /// runs of 30; after 200 ms pauses, as in perf_kernels' turns, medians 13-15 ms against
  /// 7.3-8.4 pinned). at_wake narrows a sleeping worker's CPUs to one other than
  /// the caller's just before the wake (the worker widens them again when it runs, so the
  /// balancer stays free to move it when that CPU is busy); pinned keeps each worker on one
  /// such CPU, re-pinned when the caller's CPU changes. One getcpu per region; a syscall
  /// only for a sleeping worker or a caller that moved.
  void place_workers() {
    if (cpus_.empty())
      return;
    int here = sched_getcpu();
    caller_cpu_.store(here, std::memory_order_relaxed);
    if (here < 0)
      return;
    if (mode_ == placement::pinned) {
      if (here == placed_for_)
        return;
      placed_for_ = here;
    }
    size_t next = 0;
    for (size_t w = 0; w < workers_.size(); ++w, ++next) {
      if (cpus_[next] == here)
        ++next;
      auto& st = workers_state_[w + 1];
      if (mode_ == placement::at_wake && !st.asleep.load(std::memory_order_relaxed))
        continue;
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpus_[next], &one);
      if (pthread_setaffinity_np(workers_[w].native_handle(), sizeof one, &one) == 0
          && mode_ == placement::at_wake)
        st.steered.store(true, std::memory_order_relaxed); // published by the generation bump
    }
  }

  /// wake_workers() with the placement left to the scheduler: the sleeping workers are sent
  /// to CPUs other than the caller's for this wake only (as at_wake does; they widen their
  /// CPUs again once running). Woken from a long sleep, a worker otherwise often lands on the
  /// caller's CPU and the forward pass runs in series (perf_serving MNIST 1 invocation at load
  /// 3.4-3.9: the runner 5.8 ms unplaced, 3.2-3.5 placed, against 3.0-3.5 direct).
  void steer_sleeping() {
    if (wake_cpus_.empty())
      return;
    int here = sched_getcpu();
    if (here < 0)
      return;
    size_t next = 0;
    for (size_t w = 0; w < workers_.size(); ++w, ++next) {
      if (wake_cpus_[next] == here)
        ++next;
      auto& st = workers_state_[w + 1];
      if (!st.asleep.load(std::memory_order_relaxed) || next >= wake_cpus_.size())
        continue;
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(wake_cpus_[next], &one);
      if (pthread_setaffinity_np(workers_[w].native_handle(), sizeof one, &one) == 0)
        st.steered.store(true, std::memory_order_relaxed); // published by the generation bump
    }
  }

  void loop(worker_state& st) {
    uint64_t seen = 0; // the generation at construction
    for (;;) {
      // Spin a little before sleeping: regions come in quick succession in a forward pass.
      // Not while another pool (OpenBLAS) has the cores: park_workers() cuts the spin short.
      // Nor on the caller's CPU (placement off or overruled): spinning there only takes
      // the caller's time; asleep, the worker is placed elsewhere at the next wake.
      uint64_t g = seen;
      int spins = cpus_.empty() || sched_getcpu() != caller_cpu_.load(std::memory_order_relaxed)
                    ? 4000
                    : 0;
      for (int i = 0; i < spins && (g = generation_.load(std::memory_order_acquire)) == seen
                      && !park_request.load(std::memory_order_relaxed);
           ++i) {
        cpu_relax();
        // Woken by wake_workers(): spin on until its deadline (checked every 64 pauses).
        if (i == spins - 1 && now_ns() < wake_spin_until_.load(std::memory_order_relaxed))
          i -= 64;
      }
      if (spins == 0)
        g = generation_.load(std::memory_order_acquire);
      if (g == seen) {
        st.asleep.store(true, std::memory_order_relaxed);
        generation_.wait(seen);
        st.asleep.store(false, std::memory_order_relaxed);
        g = generation_.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop_.load())
        return;
      if (st.steered.exchange(false, std::memory_order_relaxed))
        sched_setaffinity(0, sizeof allowed_, &allowed_);
      if (auto j = current_.load())
        j->work();
    }
  }

  int threads_;
  int made_with_;
  placement mode_;
  /// Index 0 unused (the caller); worker i's state at i.
  std::unique_ptr<worker_state[]> workers_state_;
  std::vector<std::thread> workers_;
  /// The CPUs this process may use, as a set and as a list (empty: no placement), and the
  /// caller's CPU that the pinned placement was made for.
  cpu_set_t allowed_;
  std::vector<int> cpus_;
  /// The CPUs wake_workers() may steer a sleeping worker to (whatever the placement; empty
  /// when fewer than the threads).
  std::vector<int> wake_cpus_;
  int placed_for_ = -1;
  /// The CPU of the caller of the latest region (-1: not known).
  std::atomic<int> caller_cpu_{-1};
  std::mutex region_mtx_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<std::shared_ptr<job>> current_;
  std::atomic<bool> stop_{false};
  /// wake_workers()'s deadline for the spin (steady clock ns; 0: none).
  std::atomic<int64_t> wake_spin_until_{0};
};

int default_threads() {
  if (const char* e = std::getenv("COMB_KERNEL_THREADS")) {
    int n = std::atoi(e);
    if (n >= 1 && n <= 256)
      return n;
  }
  // The CPUs this thread may run on (a process started with `taskset -c 1` or `comb compute
  // --cpus 1`), not every CPU of the machine: more threads than CPUs only take turns.
  auto allowed = static_cast<int>(comb::allowed_cpus().size());
  if (allowed >= 1)
    return std::min(allowed, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
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
  if (!the_pool || the_pool->threads() != n
      || the_pool->made_with() != placement_override.load(std::memory_order_relaxed))
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

const char* worker_placement() {
  switch (placement_mode()) {
  case placement::none:
    return "left to the scheduler (COMB_KERNEL_PIN=0)";
  case placement::at_wake:
    return "placed off the caller's CPU when woken (COMB_KERNEL_PIN=wake)";
  default:
    return "pinned off the caller's CPU";
  }
}

void set_worker_placement(const char* mode) {
  placement_override.store(mode ? static_cast<int>(parse_placement(mode)) : -1);
}

void park_workers() {
  if (!park_request.load(std::memory_order_relaxed))
    park_request.store(true, std::memory_order_relaxed);
}

void wake_workers(int spin_us) {
  if (spin_us <= 0 || inside_region || cpu_threads() == 1)
    return;
  get_pool()->wake(spin_us);
}

int sleeping_workers() {
  std::lock_guard<std::mutex> g{pool_mtx};
  return the_pool ? the_pool->sleeping() : 0;
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
