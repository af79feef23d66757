// comb::nectar::client_budget: a per-client bound on slow CRS requests. Each client (the
// request's remote address) has a bucket of CRS CPU time that refills at `per_second` up to
// `burst`; a request is charged what its CRS took beyond `free` (ordinary requests, a few
// milliseconds, cost nothing; a body that makes a rule backtrack, up to the pool's 250 ms
// budget, costs nearly all of it). While a client's bucket is empty, its requests are labeled
// "budget exhausted" (flagged) without running CRS (rules_pool.hpp), so that a flood of slow
// bodies from one client cannot hold the CRS workers while other clients' requests wait. A
// bucket may go into debt down to -burst (a request charged after it was allowed), so that a
// client that flooded waits out its debt. Thread-safe; memory bounded by `max_clients`
// (full buckets, which hold no state, go first).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace comb::nectar {

struct client_budget_options {
  /// CRS CPU time a client's bucket regains per second (0: no bound).
  std::chrono::milliseconds per_second{500};
  /// The most a bucket holds (and the most debt it may owe).
  std::chrono::milliseconds burst{1000};
  /// CRS CPU time of one request that is not charged.
  std::chrono::milliseconds free{10};
  /// The most clients tracked at once.
  size_t max_clients = 65536;
};

class client_budget {
public:
  using clock = std::chrono::steady_clock;
  explicit client_budget(client_budget_options opts = {});

  /// Whether the bound is on (per_second > 0).
  bool enabled() const { return opts_.per_second.count() > 0; }
  /// Whether `client` may run CRS now (its bucket is not empty); counts a refusal.
  bool allow(const std::string& client, clock::time_point now = clock::now());
  /// Charges `client` for a request whose CRS took `cpu` (beyond `free`).
  void charge(const std::string& client, std::chrono::nanoseconds cpu,
              clock::time_point now = clock::now());
  /// Requests refused so far.
  uint64_t refused() const;
  /// Clients tracked now.
  size_t clients() const;

private:
  struct bucket {
    int64_t balance_ns = 0;
    clock::time_point at{};
  };
  /// `client`'s bucket refilled to `now` (a new one is full); mu_ held.
  bucket& refill(const std::string& client, clock::time_point now);

  client_budget_options opts_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, bucket> buckets_;
  uint64_t refused_ = 0;
};

} // namespace comb::nectar
