// comb::runtime::system_config: the CAF actor-system configuration every Comb process uses:
// loads the middleman (remote actors over TCP), registers the "comb" error category so errors
// render with their names, and sizes the scheduler. Construct one per process.
#pragma once

#include <caf/actor_system_config.hpp>

#include <cstddef>

namespace comb::runtime {

class system_config : public caf::actor_system_config {
public:
  /// `threads` = 0: one scheduler worker per core.
  explicit system_config(size_t threads = 0);
};

} // namespace comb::runtime
