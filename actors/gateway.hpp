// comb::actors::gateway: a node's entry point for remote clients (published on the node's
// port through CAF's middleman). It parses and size-checks the JSON arguments, routes the call
// to the state actor of its partition, and returns the result as JSON text. A call for a
// partition another node of the cluster runs is forwarded to that node's gateway through a
// peer link (one per peer, linked to the gateway): it connects lazily, keeps the connection,
// and after a loss or a failed connect answers `unavailable` at once (naming the node, its
// address and the partition) until a retry, with backoff, reaches the peer again; a forwarded
// call that gets no answer within the forward timeout (a peer cut off the network, or stuck)
// fails with `timeout` naming the peer. A forwarded call carries the forwarding node's name
// and the partition it chose: the receiving gateway runs it only when it runs that partition
// itself (same partition, same count); otherwise the nodes' configs disagree and it refuses
// the call (`bad_config`, naming both nodes) instead of forwarding it again, so a call never
// loops between nodes. Bad input gets a clear error; the gateway keeps serving. Its info is
// the node's description, what `gateway_options::live_info` adds (provenance lag) and, when
// the node runs an outbox dispatcher, the dispatcher's state ("outbox": counters, the compute
// connection, failing calls).
//
// Models across nodes: a procedure that names a model (procedure_options::model_arg, e.g.
// imaging.classify) runs where its data is, on the node that receives the call; when another
// node holds the model's partition, the gateway first makes sure this node holds a mirror of
// the owner's active version: it asks the owner (comb.model.active, through the peer link),
// fetches a version it lacks chunk by chunk (comb.model.get_chunk) and stores it with
// comb.model.mirror_chunk and comb.model.mirror (runtime/pieces/model_store.hpp), as
// procedures, so the node's log replays them. The owner is asked again once
// gateway_options::model_check_interval has passed; calls meanwhile use the mirror. An owner
// without an active version gives bad_model, an unreachable one unavailable or timeout within
// the forward timeout, each naming the owner; once the gateway has mirrored or confirmed a
// version since the node started, calls keep using it while the owner cannot be reached.
#pragma once

#include "base/endpoint.hpp"
#include "runtime/interfaces.hpp"
#include "runtime/router.hpp"
#include "runtime/tls.hpp"

#include <caf/actor.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace comb::actors {

/// Another node whose gateway this one forwards calls to (over TLS when the gateway's
/// tls_config is set).
struct gateway_peer {
  std::string name;
  endpoint address;
};

struct gateway_options {
  /// The bound of a call forwarded to a peer (and of connecting to it): after it the call
  /// fails with errc::timeout naming the peer, whatever the caller's own timeout.
  std::chrono::milliseconds forward_timeout{5000};
  /// Called for each info request (on the gateway's thread; must be thread-safe): the keys of
  /// the JSON object it returns are added to the node's info. Null: nothing added.
  std::function<nlohmann::json()> live_info;
  /// The cluster's shared secret, used when TLS is off ("" : none). With one, a caller from
  /// another process must prove it (hello, then auth) before the gateway runs, forwards or
  /// describes anything; others get permission_denied, and the refusal is logged on stderr.
  /// Peer links prove it to their peers the same way.
  std::string secret;
  /// How long a mirrored model's version is used before the owner is asked again.
  std::chrono::milliseconds model_check_interval{1000};
};

/// A model this node mirrors from the node that holds its partition (see above).
struct model_mirror {
  /// The version mirrored and made active here (0: none yet) and its digest.
  uint32_t version = 0;
  std::string digest;
  /// When the owner last confirmed it (or could not be reached while a mirror was here).
  std::chrono::steady_clock::time_point checked{};
  bool fetching = false;
  /// Calls waiting for the fetch in progress: each gets its outcome.
  std::vector<std::function<void(const caf::error&)>> waiting;
};

struct gateway_state {
  runtime::router router;
  std::string info;
  /// The outbox dispatcher (answers caf::get_atom with JSON text), or null.
  caf::actor dispatcher;
  std::function<nlohmann::json()> live_info;
  std::string secret;
  /// Nonces handed out, by the caller's node id (each used once), and the node ids that
  /// proved the secret; node ids already said in the log as refused.
  std::map<std::string, std::string> nonces;
  std::set<std::string> proven, logged;
  /// Peer links by node name.
  std::map<std::string, caf::actor> peers;
  /// Models mirrored from other nodes, by name.
  std::map<std::string, model_mirror> mirrors;
  std::chrono::milliseconds model_check_interval{1000};
  std::chrono::milliseconds forward_timeout{5000};
  static inline const char* name = "gateway";
};

/// Largest argument text the gateway accepts for any procedure, in bytes.
constexpr size_t gateway_max_args_bytes = 16u << 20;

/// Proves `secret` to the gateway `gw` (hello, then auth) for every actor of `sys`: none when
/// the node asks for no secret or `secret` is empty (its calls are then refused, saying why);
/// permission_denied when the node refuses the proof; the request's error otherwise.
caf::error authenticate(caf::actor_system& sys, const gateway_actor& gw, const std::string& secret,
                        std::chrono::milliseconds timeout);

gateway_actor::behavior_type gateway(gateway_actor::stateful_pointer<gateway_state> self,
                                     runtime::router router, std::string info,
                                     caf::actor dispatcher, std::vector<gateway_peer> peers,
                                     runtime::tls_config tls, gateway_options opts = {});

} // namespace comb::actors
