// comb::runtime::client: a connection to a running node's gateway over TCP (CAF middleman),
// for tools (`comb call`), apps' servers and multi-process tests. Cheap to copy: the copies
// share one long-lived actor of this process that sends every call to the gateway, so the
// node sees one remote actor per connection, not a new one (and a proxy built and torn down)
// per call. Every call blocks the calling thread until the reply, so several threads may
// call concurrently.
#pragma once

#include "runtime/interfaces.hpp"
#include "base/endpoint.hpp"
#include "runtime/tls.hpp"

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace comb::runtime {

class client {
public:
  /// Connects to the gateway published at `ep` within `timeout`: network_error when nothing
  /// listens there, errc::timeout when something accepts the connection but does not complete
  /// CAF's handshake in time (not a Comb node, or one that hangs), protocol_error when the
  /// actor published there is not a Comb gateway.
  /// With `tls` enabled the connection uses TLS (the actor system must have had
  /// system_config::set_tls with the same files): network_error with OpenSSL's reason when
  /// the node refuses this client's certificate or its own does not chain to the CA.
  /// With `secret` (a cluster without TLS that has a shared secret) the client proves it
  /// (permission_denied when the node refuses it); without one, a node that requires a secret
  /// refuses the calls, saying so.
  static caf::expected<client> connect(caf::actor_system& sys, const endpoint& ep,
                                       std::chrono::milliseconds timeout = std::chrono::seconds{10},
                                       const tls_config& tls = {}, const std::string& secret = {});

  /// Invokes `proc` with JSON `args` as `role`; the result, or the node's error. When the
  /// connection to the node is lost before the reply, `unavailable` at once (not a timeout):
  /// the call may or may not have committed, and the message says how to find out.
  caf::expected<nlohmann::json> call(const std::string& proc, const std::string& args,
                                     const std::string& role,
                                     std::chrono::milliseconds timeout = std::chrono::seconds{
                                       60}) const;

  /// The node's self-description (JSON text); `unavailable` when the connection is lost.
  caf::expected<std::string> info() const;

  actors::gateway_actor gateway() const { return gateway_; }

  /// True when `other` is a copy of this client (the same connection and caller).
  bool same_connection(const client& other) const { return link_ == other.link_; }

private:
  /// The actor that sends this connection's calls; it ends with the last copy of the client,
  /// or when the gateway goes away (then every call is `unavailable` at once).
  struct link;

  client(caf::actor_system& sys, actors::gateway_actor gw, endpoint ep);

  template <class... Ts>
  caf::expected<std::string> ask(std::chrono::milliseconds timeout, const caf::error& lost,
                                 Ts&&... xs) const;

  caf::actor_system* sys_;
  actors::gateway_actor gateway_;
  endpoint ep_;
  std::shared_ptr<const link> link_;
};

} // namespace comb::runtime
