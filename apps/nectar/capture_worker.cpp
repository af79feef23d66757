// Nectar's capture worker (see capture_worker.hpp).
#include "apps/nectar/capture_worker.hpp"

#include "apps/nectar/credentials.hpp"
#include "apps/nectar/httplog.hpp"
#include "apps/nectar/rules_pool.hpp"
#include "base/errc.hpp"
#include "base/wall_clock.hpp"
#ifdef COMB_NECTAR_HAVE_CRS
#  include "apps/anomaly/crs_engine.hpp"
#endif

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>

namespace comb::anomaly {
#ifndef COMB_NECTAR_HAVE_CRS
class crs_engine {};
#endif
} // namespace comb::anomaly

namespace comb::nectar {

using nlohmann::json;

namespace {

/// CPU time of the calling thread, ns.
uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

/// Bytes an exchange holds in memory (what the bound counts).
size_t bytes_of(const exchange& x) {
  size_t n = sizeof(exchange) + x.method.size() + x.target.size() + x.version.size() + x.body.size()
             + x.remote_addr.size();
  for (auto& [k, v] : x.headers)
    n += k.size() + v.size() + 64;
  return n;
}

/// The `comb` executable for the rules workers: as given, or this process's own when it is
/// named comb (`comb nectar serve`); empty when there is none (a test program, say).
std::string rules_executable(const std::string& given) {
  if (!given.empty())
    return given;
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0)
    return {};
  std::string self{buf, static_cast<size_t>(n)};
  auto slash = self.rfind('/');
  return self.substr(slash == std::string::npos ? 0 : slash + 1) == "comb" ? self : std::string{};
}

} // namespace

std::string capture_worker::next_request_id() {
  static const std::string tag = [] {
    auto r = random_hex(4);
    return r ? *r : std::string{"00000000"};
  }();
  static std::atomic<uint64_t> last{0};
  auto now = static_cast<uint64_t>(wall_clock_ns());
  auto prev = last.load(std::memory_order_relaxed);
  uint64_t next = 0;
  do {
    next = std::max(prev + 1, now);
  } while (!last.compare_exchange_weak(prev, next, std::memory_order_relaxed));
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx-%s", static_cast<unsigned long long>(next), tag.c_str());
  return buf;
}

capture_worker::capture_worker(std::shared_ptr<node_link> link, capture_options opts)
  : link_(std::move(link)), opts_(std::move(opts)) {
  if (opts_.rules) {
#ifdef COMB_NECTAR_HAVE_CRS
    auto exe = rules_executable(opts_.rules_executable);
    std::string unbounded; // why CRS runs in this process
    if (opts_.rules_workers == 0)
      unbounded = "in this process, no time bound";
    else if (exe.empty())
      unbounded = "in this process, no time bound: no comb executable for rules workers";
    if (unbounded.empty()) {
      rules_pool_options po;
      po.executable = exe;
      po.paranoia = opts_.paranoia;
      po.workers = opts_.rules_workers;
      po.cpu_budget = opts_.rules_cpu_budget;
      po.wall_budget = opts_.rules_wall_budget;
      po.budget = opts_.rules_client_budget;
      auto p = rules_pool::start(po);
      if (p) {
        rules_pool_ = std::move(*p);
        stats_.rules_engine = rules_pool_->name();
      } else {
        stats_.rules_engine = "off: " + describe(p.error());
        std::cerr << "nectar capture: rule labels off: " << describe(p.error()) << std::endl;
      }
    } else {
      anomaly::crs_options co;
      co.paranoia = opts_.paranoia;
      co.allow_accept_charset = true;
      auto e = anomaly::crs_engine::create(co);
      if (e) {
        crs_ = std::move(*e);
        stats_.rules_engine = crs_->name() + ", " + unbounded;
      } else {
        stats_.rules_engine = "off: " + describe(e.error());
        std::cerr << "nectar capture: rule labels off: " << describe(e.error()) << std::endl;
      }
    }
#else
    stats_.rules_engine = "off: built without libmodsecurity";
#endif
  } else {
    stats_.rules_engine = "off";
  }
  for (size_t i = 0; i < std::max<size_t>(opts_.senders, 1); ++i)
    threads_.emplace_back([this, i] { run(i); });
  if (has_rules())
    for (size_t i = 0; i < opts_.rules_threads; ++i)
      rules_threads_.emplace_back([this] { run_rules(); });
}

capture_worker::~capture_worker() {
  stop(std::chrono::milliseconds{0});
}

void capture_worker::label_rules([[maybe_unused]] item& it) {
#ifdef COMB_NECTAR_HAVE_CRS
  if (!has_rules())
    return;
  // CRS reads at most rules_body_bytes of the body (ProcessPartial), as a deployment with
  // ModSecurity's recommended limit does; the copy takes no more than that.
  auto body_limit = std::min(opts_.rules_body_bytes, max_raw_bytes);
  bool cut = it.x.body.size() > body_limit;
  anomaly::http_request r{it.x.method, it.x.target, it.x.version, it.x.headers,
                          cut ? it.x.body.substr(0, body_limit) : it.x.body};
  uint64_t cpu = 0;
  anomaly::crs_verdict v;
  if (rules_pool_) {
    // In a worker process, under the budget: its own count of CRS's CPU.
    auto res = rules_pool_->evaluate(r, it.x.remote_addr);
    cpu = res.cpu_ns;
    if (res.what != rules_result::outcome::ok) {
      // Over the budget, its worker died, or its client's budget is spent: flagged, the label
      // naming why; not labeled when no worker could be started.
      bool unavailable = res.what == rules_result::outcome::unavailable;
      it.rule_label = unavailable ? 0 : 1;
      it.rule_ids = rules_failure_label(res.what);
      it.rule_score = 0;
      if (unavailable || res.what == rules_result::outcome::budget_exhausted)
        return; // CRS did not run
      rules_cpu_ns_.fetch_add(cpu, std::memory_order_relaxed);
      rules_evaluated_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    v.flagged = res.flagged;
    v.score = res.score;
    v.rules = std::move(res.rules);
  } else {
    auto cpu0 = thread_cpu_ns();
    v = crs_->evaluate(r);
    cpu = thread_cpu_ns() - cpu0;
  }
  rules_cpu_ns_.fetch_add(cpu, std::memory_order_relaxed);
  rules_evaluated_.fetch_add(1, std::memory_order_relaxed);
  if (r.body.size() > rules_large_body) {
    rules_large_.fetch_add(1, std::memory_order_relaxed);
    rules_large_cpu_ns_.fetch_add(cpu, std::memory_order_relaxed);
  }
  if (cut)
    rules_cut_.fetch_add(1, std::memory_order_relaxed);
  for (int id : v.rules)
    it.rule_ids += (it.rule_ids.empty() ? "" : ",") + std::to_string(id);
  it.rule_label = v.flagged ? 1 : 0;
  it.rule_score = v.score;
#endif
}

void capture_worker::push(exchange x) {
  item it{next_request_id(), std::move(x), 0};
  enqueue(std::move(it));
}

std::string capture_worker::begin(exchange x) {
  item it{next_request_id(), std::move(x), 0};
  it.at_arrival = true;
  it.open = true;
  auto id = it.id;
  enqueue(std::move(it));
  return id;
}

void capture_worker::answer(item& it, const response& r) {
  it.x.status = r.status;
  it.x.response_bytes = r.bytes;
  it.x.time_taken_ms = r.time_taken_ms;
  it.x.execution_id = r.execution_id;
  it.open = false;
}

void capture_worker::complete(const std::string& id, int status, size_t response_bytes,
                              double time_taken_ms, uint64_t execution_id) {
  response r{id, status, response_bytes, time_taken_ms, execution_id};
  std::lock_guard<std::mutex> guard{mu_};
  auto o = open_.find(id);
  if (o == open_.end())
    return; // dropped by the memory bound (counted there)
  if (!o->second.held) {
    // Still queued (merged into its row when a sender takes it), or its model call is with
    // the node (its row is queued once the node acknowledged the call).
    o->second.resp = std::move(r);
    cv_.notify_all(); // a sender may be waiting for it (early_label_delay)
    return;
  }
  // Its model call was acknowledged (or, held at saturation, not sent yet: its label goes
  // with its row): the row, whole.
  auto it = std::move(*o->second.held);
  open_.erase(o);
  answer(it, r);
  queue_bytes_ += it.bytes;
  queue_.push_back(std::move(it));
  cv_.notify_one();
}

void capture_worker::enqueue(item it) {
  it.bytes = bytes_of(it.x);
  // To the rules threads, unless they are behind: then this thread labels its own, as with
  // no rules threads. Under saturation a rules thread gets one thread's share of the cores
  // and the HTTP threads many, so a queue for them alone would only grow.
  bool later = false;
  if (has_rules() && !rules_threads_.empty()) {
    std::lock_guard<std::mutex> guard{mu_};
    later = rules_queue_.size() < 4 * std::max<size_t>(opts_.rules_batch, 1) * rules_threads_.size();
  }
  if (!later) {
    label_rules(it);
    it.queued_at = std::chrono::steady_clock::now();
    it.queued_ns = wall_clock_ns();
  }
  std::lock_guard<std::mutex> guard{mu_};
  ++stats_.pushed;
  {
    auto now = std::chrono::steady_clock::now();
    auto gap = std::chrono::duration<double, std::nano>(now - last_arrival_).count();
    arrival_gap_ns_ += (std::min(gap, 1e9) - arrival_gap_ns_) / 16;
    last_arrival_ = now;
  }
  make_room(it.bytes);
  queue_bytes_ += it.bytes;
  if (it.open)
    open_.emplace(it.id, open_request{});
  if (later) {
    it.queued_at = std::chrono::steady_clock::now(); // the rules batch's deadline counts from it
    rules_queue_.push_back(std::move(it));
    // A rules thread starts its batch's clock at the first exchange and takes the batch once
    // it is full (or at the deadline).
    if (rules_queue_.size() == 1 || rules_queue_.size() % std::max<size_t>(opts_.rules_batch, 1) == 0)
      rules_cv_.notify_one();
    return;
  }
  queue_.push_back(std::move(it));
  // A free sender takes it at once (or, with a deadline, counts from the first request).
  cv_.notify_one();
}

void capture_worker::forget(const item& it) {
  if (it.open)
    open_.erase(it.id);
}

void capture_worker::run_rules() {
  // One engine (or pool) for every rules thread: evaluate() may run on several threads at once.
  std::unique_lock<std::mutex> lock{mu_};
  auto batch_size = std::max<size_t>(opts_.rules_batch, 1);
  std::deque<item> batch;
  for (;;) {
    rules_cv_.wait(lock, [&] { return rules_stopping_ || !rules_queue_.empty(); });
    if (rules_queue_.empty()
        || (rules_stopping_ && std::chrono::steady_clock::now() >= stop_deadline_))
      return; // stopping: stop() counts what is left as dropped
    if (!rules_stopping_ && rules_queue_.size() < batch_size && opts_.rules_batch_delay.count() > 0)
      rules_cv_.wait_until(lock, rules_queue_.front().queued_at + opts_.rules_batch_delay, [&] {
        return rules_stopping_ || rules_queue_.size() >= batch_size;
      });
    while (!rules_queue_.empty() && batch.size() < batch_size) {
      batch.push_back(std::move(rules_queue_.front()));
      rules_queue_.pop_front();
    }
    // Their bytes stay counted while CRS runs: the bound holds what the worker holds.
    lock.unlock();
    for (auto& it : batch) {
      label_rules(it);
      it.queued_at = std::chrono::steady_clock::now();
      it.queued_ns = wall_clock_ns();
    }
    lock.lock();
    for (auto& it : batch)
      queue_.push_back(std::move(it));
    batch.clear();
    cv_.notify_one();
  }
}

void capture_worker::make_room(size_t incoming) {
  // Drop the oldest held exchanges (never the batch being sent) to stay in the bound: the
  // labeled ones first, they are older.
  uint64_t dropped = 0;
  while (queue_bytes_ + sending_bytes_ + incoming > opts_.max_queue_bytes) {
    auto& q = !queue_.empty() ? queue_ : rules_queue_;
    if (q.empty())
      break;
    queue_bytes_ -= q.front().bytes;
    forget(q.front());
    q.pop_front();
    ++dropped;
  }
  if (dropped > 0) {
    // Log the first loss and then every 1000th, so a long outage does not flood the log.
    if (stats_.dropped / 1000 != (stats_.dropped + dropped) / 1000 || stats_.dropped == 0)
      std::cerr << "nectar capture: queue over " << (opts_.max_queue_bytes >> 20)
                << " MiB (node away?): dropped " << stats_.dropped + dropped
                << " oldest requests so far" << std::endl;
    stats_.dropped += dropped;
  }
}

void capture_worker::stop(std::chrono::milliseconds deadline) {
  {
    std::lock_guard<std::mutex> guard{mu_};
    if (!rules_stopping_) {
      rules_stopping_ = true;
      stop_deadline_ = std::chrono::steady_clock::now() + deadline;
    }
  }
  // The rules threads label what they hold first (until the deadline), while the senders
  // still send; then the senders send the rest.
  rules_cv_.notify_all();
  for (auto& t : rules_threads_)
    if (t.joinable())
      t.join();
  {
    std::lock_guard<std::mutex> guard{mu_};
    if (!rules_queue_.empty()) {
      stats_.dropped += rules_queue_.size();
      for (auto& it : rules_queue_) {
        queue_bytes_ -= it.bytes;
        forget(it);
      }
      rules_queue_.clear();
    }
    stopping_ = true;
    // Requests held at saturation for a response that has not come: their labels go now, at
    // arrival, as before the hold (their rows follow if their responses come before the end).
    for (auto& [id, o] : open_)
      if (o.held && !o.held->label_sent && o.held->open) {
        queue_bytes_ += o.held->bytes;
        queue_.push_back(std::move(*o.held));
        o.held.reset();
      }
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable())
      t.join();
}

capture_stats capture_worker::stats() const {
  std::lock_guard<std::mutex> guard{mu_};
  auto s = stats_;
  s.queued = queue_.size() + rules_queue_.size() + open_.size();
  s.rules_evaluated = rules_evaluated_.load(std::memory_order_relaxed);
  s.rules_cpu_ns = rules_cpu_ns_.load(std::memory_order_relaxed);
  s.rules_large = rules_large_.load(std::memory_order_relaxed);
  s.rules_large_cpu_ns = rules_large_cpu_ns_.load(std::memory_order_relaxed);
  s.rules_cut = rules_cut_.load(std::memory_order_relaxed);
  if (rules_pool_) {
    auto p = rules_pool_->stats();
    s.rules_timed_out = p.timed_out;
    s.rules_crashed = p.crashed;
    s.rules_budget_exhausted = p.budget_exhausted;
    s.rules_died_idle = p.died_idle;
    s.rules_worker_starts = p.started;
    if (p.unavailable > 0 && s.last_error.empty())
      s.last_error = "rules: " + p.last_failure;
  }
  return s;
}

std::vector<int> capture_worker::rules_worker_pids() const {
  std::vector<int> out;
  if (rules_pool_)
    for (auto pid : rules_pool_->pids())
      out.push_back(static_cast<int>(pid));
  return out;
}

void capture_worker::run(size_t index) {
  auto next_pending = std::chrono::steady_clock::now();
  for (;;) {
    std::deque<item> batch, early;
    size_t bytes = 0;
    bool sending = false;
    {
      std::unique_lock<std::mutex> lock{mu_};
      // Stopping, a sender ends once nothing is queued and no batch is with the node (an
      // acknowledged model call may leave its row to send), or at the deadline.
      auto done = [&] {
        return stopping_
               && ((queue_.empty() && in_flight_ == 0)
                   || std::chrono::steady_clock::now() >= stop_deadline_);
      };
      auto ready = [&] { return done() || !queue_.empty(); };
      if (index == 0)
        cv_.wait_until(lock, stopping_ ? stop_deadline_ : next_pending, ready);
      else if (stopping_)
        cv_.wait_until(lock, stop_deadline_, ready);
      else
        cv_.wait(lock, ready);
      // Requests come faster than one per deadline: more will come before it.
      // ...and the server is saturated (its handlers pile up): below that, waiting for the
      // deadline only adds to every request's lag.
      bool busy = opts_.batch_when_busy
                  && arrival_gap_ns_
                       < std::chrono::duration<double, std::nano>(opts_.batch_delay).count()
                  && (opts_.busy_handlers == 0
                      || handling_.load(std::memory_order_relaxed)
                           >= static_cast<int64_t>(opts_.busy_handlers));
      if (!queue_.empty() && !stopping_ && opts_.batch_delay.count() > 0
          && (in_flight_ > 0 || busy)) {
        // Another batch is with the node, or requests come fast: wait for a full batch, for
        // the deadline of the first request (counted from when it was queued: requests that
        // queued while the senders were busy waited already), or (not busy) for the node to
        // be idle again. An idle pipeline sends at once.
        auto due = queue_.front().queued_at + opts_.batch_delay;
        cv_.wait_until(lock, due, [&] {
          return stopping_ || queue_.size() >= opts_.batch_requests
                 || (!busy && in_flight_ == 0);
        });
      }
      // Saturated: a request taken at arrival whose response is still to come is held (out of
      // the queue, so that no sender waits on it) until complete() queues its row, whose label
      // then goes with that batch: one capture call and one provenance record per request,
      // not one for its label at arrival and one for its row.
      bool hold = busy && opts_.hold_when_busy && !stopping_;
      // A request taken at arrival at the front waits a little for its response (complete()
      // wakes the senders), so that a fast handler's request goes once.
      auto waiting = [&] {
        if (hold || queue_.empty() || stopping_ || !queue_.front().open)
          return false;
        auto o = open_.find(queue_.front().id);
        return o != open_.end() && !o->second.resp;
      };
      if (opts_.early_label_delay.count() > 0 && waiting()) {
        auto due = queue_.front().queued_at + opts_.early_label_delay;
        auto front = queue_.front().id;
        cv_.wait_until(lock, due, [&] {
          return !waiting() || queue_.front().id != front
                 || queue_.size() >= opts_.batch_requests;
        });
      }
      if (done())
        return;
      while (!queue_.empty() && batch.size() + early.size() < opts_.batch_requests
             && (bytes == 0 || bytes + queue_.front().bytes <= opts_.batch_bytes)) {
        auto it = std::move(queue_.front());
        queue_.pop_front();
        if (it.open) {
          auto o = open_.find(it.id);
          if (o != open_.end() && o->second.resp) {
            // Its response came while it was queued: one row with its label.
            answer(it, *o->second.resp);
            open_.erase(o);
          } else if (hold && o != open_.end()) {
            // Its bytes count again once complete() queues it.
            queue_bytes_ -= it.bytes;
            o->second.held = std::move(it);
            ++stats_.held_for_response;
            continue;
          }
        }
        bytes += it.bytes;
        (it.open ? early : batch).push_back(std::move(it));
      }
      sending = !batch.empty() || !early.empty();
      queue_bytes_ -= bytes;
      sending_bytes_ += bytes;
      in_flight_ += sending ? 1 : 0;
    }
    sent r;
    if (sending)
      r = send(batch, early);
    {
      std::lock_guard<std::mutex> guard{mu_};
      sending_bytes_ -= bytes;
      in_flight_ -= sending ? 1 : 0;
      // The open requests wait for their responses (their rows then go without a second
      // label), or had them meanwhile: their rows are queued now. A call that was refused, or
      // found no active model version, leaves their labels to their rows.
      for (auto& it : early) {
        it.label_sent = r.ok && r.labels_enqueued;
        it.label_execution = it.label_sent ? r.execution : 0;
        stats_.early_labels += it.label_sent ? 1 : 0;
        auto o = open_.find(it.id);
        if (o == open_.end())
          continue;
        if (!o->second.resp) {
          o->second.held = std::move(it);
          continue;
        }
        answer(it, *o->second.resp);
        open_.erase(o);
        queue_bytes_ += it.bytes;
        queue_.push_back(std::move(it));
      }
    }
    cv_.notify_all(); // a sender waiting on this batch's deadline, or to stop, may go
    if (index == 0 && !stopping_ && std::chrono::steady_clock::now() >= next_pending) {
      label_pending();
      next_pending = std::chrono::steady_clock::now() + std::chrono::seconds{1};
    }
  }
}

capture_worker::sent capture_worker::send(std::deque<item>& batch, std::deque<item>& early) {
  json reqs = json::array();
  for (auto& it : batch) {
    json row;
    if (it.row) { // made when its model call went: the response fields now
      row = std::move(*it.row);
      row["sc_status"] = it.x.status;
      row["sc_bytes"] = it.x.response_bytes;
      row["time_taken_ms"] = it.x.time_taken_ms;
      row["execution_id"] = it.x.execution_id;
    } else {
      row = capture_row(it.x);
    }
    row["id"] = it.id;
    row["rule_label"] = it.rule_label;
    row["rule_ids"] = it.rule_ids;
    row["rule_score"] = it.rule_score;
    row["queued_ns"] = it.queued_ns;
    // Labeled from its arrival: its model call went before its response (label_execution).
    row["labeled_from"] = it.label_sent ? "arrival" : "response";
    if (it.label_sent) {
      row["label_sent"] = true;
      row["label_execution"] = it.label_execution;
    }
    reqs.push_back(std::move(row));
  }
  json labels = json::array();
  for (auto& it : early) {
    it.row = capture_row(it.x);
    labels.push_back(json{{"id", it.id},
                          {"text", model_text(*it.row)},
                          {"rule_label", it.rule_label},
                          {"rule_ids", it.rule_ids}});
  }
  json args{{"batch", !batch.empty() ? batch.front().id : early.front().id},
            {"requests", std::move(reqs)}};
  if (!labels.empty())
    args["labels"] = std::move(labels);
  if (opts_.label && !opts_.model.empty()) {
    args["model"] = opts_.model;
    args["threshold"] = opts_.threshold;
  }
  auto backoff = std::chrono::milliseconds{20};
  for (;;) {
    auto r = link_->call("httplog.capture", args);
    std::unique_lock<std::mutex> lock{mu_};
    if (r) {
      ++stats_.batches;
      stats_.captured += r->value("inserted", uint64_t{0});
      stats_.duplicates += r->value("duplicates", uint64_t{0});
      stats_.label_calls += r->value("enqueued", uint64_t{0});
      stats_.unlabeled += r->value("unlabeled", uint64_t{0});
      return sent{true, r->value("execution", uint64_t{0}),
                  r->value("labels_enqueued", uint64_t{0}) > 0};
    }
    stats_.last_error = describe(r.error());
    // Only the node's own refusal (a Comb error that is not transient: a bad row) drops the
    // batch. An error of the transport (CAF's, e.g. a connection that broke mid-call in a way
    // the client does not name) may or may not have committed: sent again, as a batch is
    // idempotent. Dropping those lost answered requests' rows.
    bool refused = r.error().category() == errc_category && !is_transient(r.error());
    if (!refused && r.error().category() != errc_category && stats_.retries == 0)
      std::cerr << "nectar capture: sending a batch again after: " << stats_.last_error
                << std::endl;
    if (refused) {
      stats_.rejected += batch.size();
      std::cerr << "nectar capture: the node refused a batch of " << batch.size()
                << " requests and " << early.size() << " early labels: " << stats_.last_error
                << std::endl;
      return {};
    }
    if (stopping_ && std::chrono::steady_clock::now() >= stop_deadline_) {
      std::cerr << "nectar capture: stopping with " << batch.size() + queue_.size()
                << " requests not captured: " << stats_.last_error << std::endl;
      return {};
    }
    ++stats_.retries;
    // Sleep (without the lock); wake early only to stop.
    cv_.wait_for(lock, backoff, [&] { return stopping_; });
    backoff = std::min(backoff * 2, std::chrono::milliseconds{1000});
  }
}

void capture_worker::label_pending() {
  if (!opts_.label || opts_.model.empty())
    return;
  auto r = link_->call("httplog.label_pending",
                       json{{"model", opts_.model}, {"threshold", opts_.threshold}, {"limit", 512}},
                       std::chrono::seconds{10});
  if (r && r->value("enqueued", 0) > 0) {
    std::lock_guard<std::mutex> guard{mu_};
    stats_.label_calls += 1;
  }
}

} // namespace comb::nectar
