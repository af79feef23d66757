// comb::runtime::drive: runs `total` invocations from `clients` concurrent client actors, each
// keeping one request in flight, straight to the state actors through a router. Used by the
// transaction benchmark, the demo and the concurrency tests. Thread-safe; blocks the caller.
#pragma once

#include "runtime/router.hpp"

#include <caf/actor_system.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace comb::runtime {

struct load_result {
  uint64_t ok = 0;
  uint64_t failed = 0;
  double seconds = 0;
  /// The first few errors, rendered.
  std::vector<std::string> errors;
};

/// Makes invocation number i (0..total-1).
using invocation_maker = std::function<invocation(uint64_t i)>;

/// Called with each reply (from several threads at once: must be thread-safe).
using reply_observer = std::function<void(uint64_t i, const caf::expected<nlohmann::json>& reply)>;

load_result drive(caf::actor_system& sys, const router& r, uint32_t clients, uint64_t total,
                  invocation_maker make, reply_observer observe = {});

} // namespace comb::runtime
