// comb::actors::gateway: a node's entry point for remote clients (published on the node's
// port through CAF's middleman). It parses and size-checks the JSON arguments, routes the call
// to the state actor of its partition, and returns the result as JSON text. Bad input gets a
// clear error; the gateway keeps serving. Its info is the node's description plus, when the
// node runs an outbox dispatcher, the dispatcher's state ("outbox": counters, the compute
// connection, failing calls).
#pragma once

#include "runtime/interfaces.hpp"
#include "runtime/router.hpp"

#include <caf/actor.hpp>

#include <string>

namespace comb::actors {

struct gateway_state {
  runtime::router router;
  std::string info;
  /// The outbox dispatcher (answers caf::get_atom with JSON text), or null.
  caf::actor dispatcher;
  static inline const char* name = "gateway";
};

/// Largest argument text the gateway accepts for any procedure, in bytes.
constexpr size_t gateway_max_args_bytes = 16u << 20;

gateway_actor::behavior_type gateway(gateway_actor::stateful_pointer<gateway_state> self,
                                     runtime::router router, std::string info,
                                     caf::actor dispatcher);

} // namespace comb::actors
