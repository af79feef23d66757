// comb::nectar::capture_worker: takes the exchanges the server answered (or, with
// at_arrival, the requests as their handlers start), labels each by CRS rules (libmodsecurity
// + CRS 3.3.4, apps/anomaly/crs_engine.hpp; in worker processes under a time budget per
// request, rules_pool.hpp, unless rules_workers is 0) for the pushing thread (the HTTP
// thread), or, with
// `rules_threads`, on threads of its own (the pushing thread still labels its own while they
// are behind; measured slower, see rules_threads), and writes them in
// batches through httplog.capture, which also enqueues their model labels. Sender threads (2 by
// default) each send what is queued as soon as they are free, so a request waits for no
// deadline when the pipeline is idle, and batches form by themselves while every sender waits
// for the node (an optional deadline holds a batch back for more requests). A batch the node
// did not acknowledge is sent again until it is (the capture is keyed by request id, so a
// batch applied before a crash is not applied twice). Memory is bounded: past
// `max_queue_bytes` the oldest exchanges are dropped, counted in stats and logged. Every
// second it asks httplog.label_pending to label requests that waited for an active model.
// Two-phase capture: begin() takes a request when it arrives (before its handler runs), so
// that its rule label and its model call do not wait for the response: a sender sends its
// model call (httplog.capture's `labels`) while the handler runs, and complete() adds the
// response, after which the row is captured once, whole (marked label_sent). A response that
// comes while its request is still queued makes one row with its label, as push() does.
// push(), begin() and complete() are thread-safe; the sender threads do the rest.
#pragma once

#include "apps/nectar/capture_record.hpp"
#include "apps/nectar/client_budget.hpp"
#include "apps/nectar/node_link.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace comb::anomaly {
class crs_engine;
} // namespace comb::anomaly

namespace comb::nectar {

class rules_pool;

struct capture_options {
  /// Most requests in one batch.
  size_t batch_requests = 256;
  /// While another batch is with the node, a free sender waits until its batch's first
  /// request is this old (or the batch is full, or the node is idle again) before it sends,
  /// so that batches stay large when the node is busy; when no batch is with the node, it
  /// sends at once (0: always at once). Measured (perf_nectar): waiting also when idle was
  /// most of a request's lag at 150 requests/s; never waiting made calls of 1.4 requests on
  /// average at saturation and cost about a tenth of the requests/s with capture on. 20 ms
  /// rather than 5 (perf_nectar at saturation, 800/s offered, three runs of each): calls of
  /// about 5 requests instead of 1.5-2 and capture on/off 0.82-0.91 after the response (0.77
  /// at 5 ms in the same window); the wait is within the labeling lag's 50 ms budget.
  std::chrono::milliseconds batch_delay{20};
  /// Also while the requests come faster than one per `batch_delay` (an average of recent
  /// gaps between arrivals), a free sender waits for a full batch or the first request's
  /// deadline, even when no batch is with the node: under load a sender is mostly free when a
  /// request comes (a call takes a millisecond or two), so that waiting only behind a batch
  /// with the node made calls of about 1.5 requests, each a transaction, a provenance record
  /// and a model call. Below that rate nothing changes (the pipeline sends at once).
  bool batch_when_busy = true;
  /// ...and only while at least this many requests are in their handlers (handler_started()
  /// to handler_ended(): the server is saturated, its requests queue for the CPU). Below it
  /// a free sender sends at once, and while a batch is with the node the next one gathers
  /// until it returns (the deadline as a cap). Measured (perf_nectar --quick, 2 cores, load
  /// 2.5-5.9, one run each): lag at 200/s offered (--lag-rate=200), capture queue p50 after
  /// the response / at arrival: rate alone 13.5 / 10.6 ms, 4 handlers 1.3 / 6.3, 8 handlers
  /// 0.5 / 1.9 (lag p50 25.4 / 22.2, 12.0 / 21.6, 6.4 / 9.3 ms). Saturation (--rate=800),
  /// on/off after the response / at arrival: rate alone 0.803 / 0.759 and 0.779 / 0.720, 4
  /// handlers 0.786 / 0.745, 8 handlers 0.924 / 0.559 and 0.777 / 0.643 (calls of 1.8-2.3
  /// requests against 2.7-4.0: at 8 the signal misses part of the saturation). 4 keeps the
  /// calls as large as the rate alone did. 0: the rate alone decides (as before).
  size_t busy_handlers = 4;
  /// While saturated (as above), a request taken at arrival whose response is still to come
  /// waits for it out of the queue and goes once, its label with its row, instead of its label
  /// going alone first (a second capture transaction and provenance record for the request).
  /// false: as before, for A/B (`comb nectar serve --no-hold-when-busy`).
  bool hold_when_busy = true;
  /// Threads that send batches, each one call at a time (httplog.capture is partitioned by
  /// batch, so their calls run on different partitions of the node).
  size_t senders = 2;
  /// Most raw bytes in one httplog.capture call.
  size_t batch_bytes = size_t{8} << 20;
  /// Most bytes of exchanges held (queued and in the batch being sent).
  size_t max_queue_bytes = size_t{256} << 20;
  /// Label by CRS rules (paranoia level 1, Accept-Charset allowed: BENCHMARKING.md).
  bool rules = true;
  int paranoia = 1;
  /// Most bytes of a request body CRS reads; the rest is not inspected, as a ModSecurity
  /// deployment with its recommended SecRequestBodyNoFilesLimit (128 KiB) and
  /// SecRequestBodyLimitAction ProcessPartial does. The row keeps up to 1 MiB of it. CRS's
  /// cost grows with the body (measured: 64 KiB 70 ms, 256 KiB to 1 MiB about 240 ms of CPU),
  /// so without a bound a few oversized bodies cost more than all other requests.
  size_t rules_body_bytes = size_t{128} << 10;
  /// CRS runs in this many worker processes (rules_pool.hpp), each request under a CPU
  /// budget: past `rules_cpu_budget` (CPU in the worker) or `rules_wall_budget` (wall-clock,
  /// from when the worker got it) the worker is killed and replaced, and the request labeled
  /// flagged with rule_ids "timed out" ("crashed" when its worker died otherwise). CRS 3.3.4's
  /// rule 941160 backtracks for seconds to minutes on long runs of '<' in a body, which
  /// SecPcreMatchLimit does not stop with libmodsecurity 3.0.9's PCRE2 JIT. 0: CRS in this
  /// process without a time bound (as before), also when no `comb` executable is known.
  size_t rules_workers = 2;
  std::chrono::milliseconds rules_cpu_budget{250};
  std::chrono::milliseconds rules_wall_budget{2000};
  /// With rules workers: each client (remote address) may spend this much CRS CPU beyond
  /// `free` per request (client_budget.hpp: `per_second`, `burst`); past it its requests are
  /// labeled flagged with rule_ids "budget exhausted" without CRS, so that a flood of slow
  /// bodies from one client (rule 941160: 250 ms each) does not hold the workers while other
  /// clients wait. Ordinary requests (2-3 ms of CRS) are not charged. per_second 0: no bound.
  client_budget_options rules_client_budget;
  /// The `comb` executable the workers run (`comb nectar rules-worker`); empty: this process's
  /// own executable when it is named comb.
  std::string rules_executable;
  /// Threads that run CRS on queued exchanges (one engine for all); 0: CRS runs in push()
  /// and begin(),
  /// on the caller's (HTTP) thread, as it also does while more than 2 exchanges per rules
  /// thread wait for one (they are behind: under saturation each gets one thread's share of
  /// the cores). 0 by default: measured (perf_nectar --quick --benchmarks=lag, 1,000/s
  /// offered, two paired runs at load 1.3-4 on 2 cores), 2 rules threads made the rules
  /// stage p50 8.3 and 6.9 ms against 2.1 and 3.4 ms, and the lag's p99 702 and 1113 ms
  /// against 322 and 488 ms: the HTTP threads wait on the node most of the time, so CRS on
  /// them was not what held requests up.
  size_t rules_threads = 0;
  /// With rules_threads: a rules thread takes up to this many queued exchanges at once, and
  /// waits up to `rules_batch_delay` after the first came for that many, then labels them
  /// back to back. CRS is cheaper so: libmodsecurity's rules, regexes and tables stay in the
  /// caches from one request to the next, where one request at a time, between the server's
  /// other work, meets them evicted.
  size_t rules_batch = 32;
  std::chrono::milliseconds rules_batch_delay{10};
  /// The anomaly model that labels requests ("" or label = false: none).
  bool label = true;
  std::string model = "waf";
  double threshold = 0.5;
  /// The server takes a request for capture when its handler starts (capture_worker::begin,
  /// then complete with the response), so that its model call overlaps its handler; false:
  /// after its response (push). Off by default: measured (perf_nectar --quick, paired runs at
  /// load 16-20 on 2 cores), at 1,000 requests/s offered it cut the lag's p99 from 599-650 ms
  /// to 152-205 ms, but capture-on throughput at saturation fell from 221-247 to 182-213
  /// requests/s (on/off 0.55-0.73 against 0.73-0.79): an early model call sends the
  /// request's text in a call of its own, ahead of its row.
  bool at_arrival = false;
  /// A request taken at arrival waits this long for its response before its model call goes
  /// alone: a fast handler's request then goes once, row and label together (each call
  /// costs the node a transaction and a provenance record of its arguments), a slow one's
  /// label does not wait for it. 0: never waits.
  std::chrono::milliseconds early_label_delay{5};
};

/// Bodies over this many bytes count as large in capture_stats (rules_large).
inline constexpr size_t rules_large_body = size_t{8} << 10;

/// Counters of a capture worker (monotonic, except queued).
struct capture_stats {
  uint64_t pushed = 0;      ///< requests taken (push() and begin())
  uint64_t early_labels = 0; ///< model labels sent before their request's response
  /// Requests taken at arrival that waited for their responses out of the queue because the
  /// server was saturated (their labels went with their rows).
  uint64_t held_for_response = 0;
  uint64_t captured = 0;   ///< rows the node inserted
  uint64_t duplicates = 0; ///< retried rows the node had already
  uint64_t dropped = 0;    ///< exchanges lost to the memory bound
  uint64_t rejected = 0;   ///< exchanges the node refused (not transient): logged
  uint64_t retries = 0;    ///< capture calls sent again after a transient error
  uint64_t batches = 0;
  uint64_t label_calls = 0; ///< model calls enqueued
  uint64_t unlabeled = 0;   ///< rows that waited for an active model
  uint64_t queued = 0;      ///< exchanges not yet acknowledged
  uint64_t rules_evaluated = 0; ///< requests CRS labeled
  uint64_t rules_cpu_ns = 0;    ///< CPU time (of the threads that ran it) CRS took for them
  /// Of those, the requests with a body over rules_large_body bytes, and their CPU time.
  uint64_t rules_large = 0;
  uint64_t rules_large_cpu_ns = 0;
  /// Request bodies cut to capture_options::rules_body_bytes for CRS.
  uint64_t rules_cut = 0;
  /// Requests labeled "timed out" (over the budget) and "crashed" (their worker died), rules
  /// workers found dead while idle, and workers started (replacements included).
  uint64_t rules_timed_out = 0;
  uint64_t rules_crashed = 0;
  /// Requests labeled "budget exhausted" (their client's slow CRS time spent; CRS not run).
  uint64_t rules_budget_exhausted = 0;
  uint64_t rules_died_idle = 0;
  uint64_t rules_worker_starts = 0;
  std::string rules_engine; ///< CRS set-up, or why rule labels are off
  std::string last_error;
};

class capture_worker {
public:
  /// Starts the worker thread (loading CRS first when `opts.rules`).
  capture_worker(std::shared_ptr<node_link> link, capture_options opts);
  ~capture_worker();

  /// Queues one exchange for its CRS label (on a rules thread, or with rules_threads 0 on
  /// the caller's) and its capture; never blocks on the node.
  void push(exchange x);

  /// Like push(), for a request whose response is not written yet (its response fields are
  /// ignored): its model label is enqueued without waiting for the response, its row once the
  /// response came (complete()). Returns the request id for complete().
  std::string begin(exchange x);

  /// The response to the request `begin` returned `id` for. Never blocks on the node.
  void complete(const std::string& id, int status, size_t response_bytes, double time_taken_ms,
                uint64_t execution_id);

  /// Sends what is queued (waiting up to `deadline` for the node), then stops the thread.
  void stop(std::chrono::milliseconds deadline = std::chrono::seconds{5});

  capture_stats stats() const;

  /// The server's handlers: a request started (before routing) and ended (its response
  /// written). What batch_when_busy counts as saturation (capture_options::busy_handlers).
  void handler_started() { handling_.fetch_add(1, std::memory_order_relaxed); }
  void handler_ended() { handling_.fetch_sub(1, std::memory_order_relaxed); }

  /// The CRS rules workers' process ids (none without them).
  std::vector<int> rules_worker_pids() const;

  /// A request id unique across restarts: 16 hex digits of the arrival time (ns, strictly
  /// increasing in this process), '-', 8 hex digits drawn when the process started.
  static std::string next_request_id();

private:
  /// The response part of an exchange captured at arrival.
  struct response {
    std::string id;
    int status = 0;
    size_t bytes = 0;
    double time_taken_ms = 0;
    uint64_t execution_id = 0;
  };
  /// A request taken at arrival whose response has not come yet, or whose model call is with
  /// the node: its response, once complete() got it, and the request itself while its
  /// model call is (or was) with the node (held, not queued: at most one per HTTP thread).
  struct open_request;
  struct item {
    std::string id;
    exchange x;
    size_t bytes = 0;
    /// Taken at arrival (begin()); `open`: its response is still to come.
    bool at_arrival = false;
    bool open = false;
    /// Its model call was enqueued at arrival, by the httplog.capture call `label_execution`.
    bool label_sent = false;
    uint64_t label_execution = 0;
    /// Its row, made when its model call was sent (the response fields are set when sent).
    std::optional<nlohmann::json> row;
    /// When it was queued (after its rule label): the batch deadline counts from its first
    /// request's; the row keeps the wall-clock time as queued_ns (the lag's stages).
    std::chrono::steady_clock::time_point queued_at{};
    int64_t queued_ns = 0;
    /// The CRS label (all zero without rules).
    int rule_label = 0;
    std::string rule_ids;
    int rule_score = 0;
  };
  /// Sender `index`'s loop (sender 0 also asks httplog.label_pending once a second).
  void run(size_t index);
  /// A rules thread's loop: CRS labels from rules_queue_ into queue_.
  void run_rules();
  /// Sets `it`'s rule label (nothing without rules).
  void label_rules(item& it);
  bool has_rules() const { return crs_ || rules_pool_; }
  struct open_request {
    std::optional<response> resp;
    std::optional<item> held;
  };
  /// What the node answered a batch: acknowledged, the call's execution id, and whether the
  /// `labels` of the batch were enqueued.
  struct sent {
    bool ok = false;
    uint64_t execution = 0;
    bool labels_enqueued = false;
  };
  /// Queues `it` (push() and begin()).
  void enqueue(item it);
  /// Puts the response `r` into `it` (mu_ held).
  static void answer(item& it, const response& r);
  /// Drops the oldest exchanges (captured ones first) until `incoming` more bytes fit (mu_ held).
  void make_room(size_t incoming);
  /// Forgets `it` when it was an open request (dropped or refused; mu_ held).
  void forget(const item& it);
  /// Sends `batch`: rows, and the model calls of `early` (requests still open).
  sent send(std::deque<item>& batch, std::deque<item>& early);
  void label_pending();

  std::shared_ptr<node_link> link_;
  capture_options opts_;
  std::unique_ptr<anomaly::crs_engine> crs_;
  std::unique_ptr<rules_pool> rules_pool_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  /// Exchanges waiting for their rule label (their bytes count in queue_bytes_).
  std::deque<item> rules_queue_;
  std::condition_variable rules_cv_;
  bool rules_stopping_ = false;
  std::vector<std::thread> rules_threads_;
  std::deque<item> queue_;
  /// Requests taken at arrival, until their response came and their model call (if it was
  /// sent before) was acknowledged, by id.
  std::unordered_map<std::string, open_request> open_;
  size_t queue_bytes_ = 0;
  size_t sending_bytes_ = 0;
  /// Batches with the node now.
  size_t in_flight_ = 0;
  /// When the last request was queued, and the recent gaps between requests' arrivals (an
  /// exponential average, ns): the rate batch_when_busy compares with batch_delay.
  std::chrono::steady_clock::time_point last_arrival_{};
  double arrival_gap_ns_ = 1e9;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stop_deadline_{};
  capture_stats stats_;
  /// CRS's count and CPU time, kept outside mu_ (CRS runs without it).
  std::atomic<uint64_t> rules_evaluated_{0};
  std::atomic<uint64_t> rules_cpu_ns_{0};
  std::atomic<uint64_t> rules_large_{0};
  std::atomic<uint64_t> rules_large_cpu_ns_{0};
  std::atomic<uint64_t> rules_cut_{0};
  /// Requests in the server's handlers now (handler_started() - handler_ended()).
  std::atomic<int64_t> handling_{0};
  std::vector<std::thread> threads_;
};

} // namespace comb::nectar
