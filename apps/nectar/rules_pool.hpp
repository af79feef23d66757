// comb::nectar::rules_pool: CRS rule labels with a bounded time per request. A few worker
// processes (`comb nectar rules-worker`, rules_worker.hpp) each hold CRS loaded and run it on
// one request at a time in a child forked with CRS loaded, under a CPU budget: a child past
// its budget ends, the worker answers "timed out" and forks another (a millisecond or two,
// where loading CRS again takes about 1.5 s of CPU), and one that dies otherwise (a crash,
// kill -9) is named and replaced the same way ("crashed"); both count as flagged. A worker
// that holds a request past the wall-clock budget is killed with its child and a supervisor
// thread starts a replacement; one found dead while idle (the supervisor looks four times a
// second) is replaced, and its next request goes to another worker. evaluate() is
// thread-safe: callers wait for a free worker (workers bound the concurrency of CRS, which is
// CPU-bound). Two bounds keep slow requests from holding every worker while others wait:
// requests with a large body (over `large_body_bytes`) take at most `large_workers` workers at
// once, so that ordinary requests always find one; and each client (evaluate's `client`, the
// remote address) has a budget of slow CRS time (client_budget.hpp), past which its requests
// are answered "budget exhausted" (flagged) without CRS, checked when a worker is free for it.
#pragma once

#include "apps/anomaly/http_request.hpp"
#include "apps/nectar/client_budget.hpp"

#include <caf/expected.hpp>

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace comb::nectar {

struct rules_pool_options {
  /// The `comb` executable whose `nectar rules-worker` subcommand the workers run.
  std::string executable;
  int paranoia = 1;
  /// Worker processes (CRS runs in at most this many requests at once).
  size_t workers = 2;
  /// CPU time CRS may take for one request (enforced in the worker).
  std::chrono::milliseconds cpu_budget{250};
  /// Wall-clock time a request may take in a worker, from when it was sent (enforced here:
  /// the worker is killed with SIGKILL), for a worker that stopped or starves.
  std::chrono::milliseconds wall_budget{2000};
  /// Requests whose body is over this many bytes are large: at most `large_workers` workers
  /// hold large ones at once (0: all but one, at least one).
  size_t large_body_bytes = size_t{8} << 10;
  size_t large_workers = 0;
  /// Per-client budget of slow CRS time (per_second 0: none).
  client_budget_options budget;
  /// How long a starting worker may take to load CRS.
  std::chrono::milliseconds start_timeout{60000};
};

/// What the pool said about one request.
struct rules_result {
  enum class outcome {
    ok,          ///< CRS ran: flagged, score and rules are its verdict
    timed_out,   ///< past the CPU or wall budget: the worker was killed (counted as flagged)
    crashed,     ///< the worker died while it held the request (counted as flagged)
    unavailable, ///< no worker could be started (not labeled)
    budget_exhausted, ///< the client's budget of slow CRS time is spent: CRS not run (flagged)
  };
  outcome what = outcome::ok;
  bool flagged = false;
  int score = 0;
  std::vector<int> rules;
  uint64_t cpu_ns = 0; ///< CPU time CRS took (the worker's own count; the budget when timed out)
  std::string why;     ///< what happened, for a result that is not ok
  /// The request's place among those that took a worker of its pool (1: the first), the
  /// order in which callers were served; 0 when it took none.
  uint64_t turn = 0;
};

/// The label text of a result that is not ok (rule_ids of its row): "timed out", "crashed",
/// "budget exhausted".
std::string rules_failure_label(rules_result::outcome what);

/// Counters of a pool (monotonic).
struct rules_pool_stats {
  uint64_t evaluated = 0;
  uint64_t timed_out = 0;
  uint64_t crashed = 0;     ///< CRS processes (or workers) that died holding a request
  uint64_t died_idle = 0;   ///< workers found dead while idle
  uint64_t started = 0;     ///< workers started, replacements included
  uint64_t unavailable = 0; ///< requests no worker could take
  uint64_t budget_exhausted = 0; ///< requests refused by their client's budget
  /// Large requests that waited for the large workers while another worker was idle.
  uint64_t large_waits = 0;
  std::string last_failure;
};

class rules_pool {
public:
  /// Starts `opts.workers` workers and waits for the first to load CRS (errors: the first
  /// worker's own, e.g. CRS not installed, or that it could not be started).
  static caf::expected<std::unique_ptr<rules_pool>> start(const rules_pool_options& opts);
  /// Kills the workers and waits for them.
  ~rules_pool();
  rules_pool(const rules_pool&) = delete;
  rules_pool& operator=(const rules_pool&) = delete;

  /// Labels one request (waits for a free worker) from `client` (its remote address; empty:
  /// no per-client budget).
  rules_result evaluate(const anomaly::http_request& r, const std::string& client = {});

  /// CRS's name as the first worker gave it, and how it is bounded.
  std::string name() const;
  rules_pool_stats stats() const;
  /// Callers waiting for a worker now.
  size_t waiting() const;
  /// The process ids of the workers now running (tests kill one; benchmarks read their CPU).
  std::vector<pid_t> pids() const;

private:
  struct slot {
    pid_t pid = -1;
    int fd = -1;
    enum class state { dead, starting, idle, busy } st = state::dead;
    bool large = false; ///< busy with a large request
  };
  explicit rules_pool(rules_pool_options opts);
  /// Starts a worker on `s` (no lock held): ready, or an error naming why.
  caf::expected<std::string> spawn(slot& s);
  /// Kills the worker of `s`, waits for it and says how it ended; closes its socket.
  std::string reap(slot& s, int* exit_code, int* signal);
  void supervise();

  rules_pool_options opts_;
  std::string name_;
  mutable std::mutex mu_;
  std::condition_variable dead_cv_; ///< a worker died (the supervisor replaces it)
  std::vector<slot> slots_;
  bool stopping_ = false;
  /// Consecutive failed starts (no worker could be started): evaluate stops waiting.
  size_t failed_starts_ = 0;
  rules_pool_stats stats_;
  uint64_t turns_ = 0; ///< requests that took a worker (rules_result::turn), under mu_
  /// A caller waiting for a worker: woken when it may be its turn.
  struct waiter {
    std::condition_variable cv;
  };
  /// Callers waiting for a worker, in order of arrival: ordinary requests [0], large [1].
  std::deque<waiter*> waiting_[2];
  /// Wakes the first caller of each line (`all`: every caller, to give up); mu_ held.
  void wake_lines(bool all = false);
  client_budget budget_;
  std::thread supervisor_;
};

} // namespace comb::nectar
