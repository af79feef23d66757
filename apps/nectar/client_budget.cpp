// Per-client budget of slow CRS time (see client_budget.hpp).
#include "apps/nectar/client_budget.hpp"

#include <algorithm>

namespace comb::nectar {

namespace {

int64_t ns(std::chrono::nanoseconds d) {
  return static_cast<int64_t>(d.count());
}

} // namespace

client_budget::client_budget(client_budget_options opts) : opts_(opts) {
}

client_budget::bucket& client_budget::refill(const std::string& client, clock::time_point now) {
  auto burst = ns(opts_.burst);
  auto found = buckets_.find(client);
  if (found == buckets_.end()) {
    if (buckets_.size() >= std::max<size_t>(opts_.max_clients, 1)) {
      // Full buckets hold nothing a fresh one would not: they go first, then any.
      for (auto i = buckets_.begin(); i != buckets_.end();) {
        auto elapsed = ns(now - i->second.at);
        bool full = i->second.balance_ns
                      + elapsed / 1000 * opts_.per_second.count() // ms/s = ns per 1000 ns
                    >= burst;
        i = full ? buckets_.erase(i) : std::next(i);
      }
      if (buckets_.size() >= std::max<size_t>(opts_.max_clients, 1))
        buckets_.erase(buckets_.begin());
    }
    return buckets_.emplace(client, bucket{burst, now}).first->second;
  }
  auto& b = found->second;
  if (now > b.at) {
    // per_second ms of CPU per second of wall time: per_second / 1000 ns per ns.
    auto gained = ns(now - b.at) / 1000 * opts_.per_second.count();
    b.balance_ns = std::min(burst, b.balance_ns + gained);
    b.at = now;
  }
  return b;
}

bool client_budget::allow(const std::string& client, clock::time_point now) {
  if (!enabled())
    return true;
  std::lock_guard<std::mutex> guard{mu_};
  if (refill(client, now).balance_ns > 0)
    return true;
  ++refused_;
  return false;
}

void client_budget::charge(const std::string& client, std::chrono::nanoseconds cpu,
                           clock::time_point now) {
  if (!enabled() || cpu <= opts_.free)
    return;
  std::lock_guard<std::mutex> guard{mu_};
  auto& b = refill(client, now);
  b.balance_ns = std::max(-ns(opts_.burst), b.balance_ns - ns(cpu - opts_.free));
}

uint64_t client_budget::refused() const {
  std::lock_guard<std::mutex> guard{mu_};
  return refused_;
}

size_t client_budget::clients() const {
  std::lock_guard<std::mutex> guard{mu_};
  return buckets_.size();
}

} // namespace comb::nectar
