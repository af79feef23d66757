// comb::runtime::client: a connection to a running node's gateway over TCP (CAF middleman),
// for tools (`comb call`) and multi-process tests. Cheap to copy; every call blocks the
// calling thread until the reply, so several threads may call concurrently.
#pragma once

#include "runtime/interfaces.hpp"
#include "base/endpoint.hpp"
#include "runtime/tls.hpp"

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
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

private:
  client(caf::actor_system& sys, actors::gateway_actor gw, endpoint ep)
    : sys_(&sys), gateway_(gw), ep_(std::move(ep)) {}

  caf::actor_system* sys_;
  actors::gateway_actor gateway_;
  endpoint ep_;
};

} // namespace comb::runtime
