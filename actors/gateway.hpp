// comb::actors::gateway: a node's entry point for remote clients (published on the node's
// port through CAF's middleman). It parses and size-checks the JSON arguments, routes the call
// to the state actor of its partition, and returns the result as JSON text. A call for a
// partition another node of the cluster runs is forwarded to that node's gateway through a
// peer link (one per peer, linked to the gateway): it connects lazily, keeps the connection,
// and after a loss or a failed connect answers `unavailable` at once (naming the node, its
// address and the partition) until a retry, with backoff, reaches the peer again. Bad input
// gets a clear error; the gateway keeps serving. Its info is the node's description plus, when
// the node runs an outbox dispatcher, the dispatcher's state ("outbox": counters, the compute
// connection, failing calls).
#pragma once

#include "base/endpoint.hpp"
#include "runtime/interfaces.hpp"
#include "runtime/router.hpp"
#include "runtime/tls.hpp"

#include <caf/actor.hpp>

#include <map>
#include <string>
#include <vector>

namespace comb::actors {

/// Another node whose gateway this one forwards calls to (over TLS when the gateway's
/// tls_config is set).
struct gateway_peer {
  std::string name;
  endpoint address;
};

struct gateway_state {
  runtime::router router;
  std::string info;
  /// The outbox dispatcher (answers caf::get_atom with JSON text), or null.
  caf::actor dispatcher;
  /// Peer links by node name.
  std::map<std::string, caf::actor> peers;
  static inline const char* name = "gateway";
};

/// Largest argument text the gateway accepts for any procedure, in bytes.
constexpr size_t gateway_max_args_bytes = 16u << 20;

gateway_actor::behavior_type gateway(gateway_actor::stateful_pointer<gateway_state> self,
                                     runtime::router router, std::string info,
                                     caf::actor dispatcher, std::vector<gateway_peer> peers,
                                     runtime::tls_config tls);

} // namespace comb::actors
