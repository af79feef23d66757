// comb::nectar::node_link: the Nectar server's connection to its Comb node, connected on
// first use and again after the node went away (a restart), so that one lost connection does
// not end the server. Thread-safe: calls from several threads share one connection
// (runtime::client: one long-lived actor of this process sends them all to the node's
// gateway, so the node sees one remote actor for the link rather than a new one per call).
#pragma once

#include "base/endpoint.hpp"
#include "node/client.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

namespace comb::nectar {

class node_link {
public:
  /// `tls` and `secret`: the cluster's credentials (runtime::client::connect); none: plain.
  node_link(caf::actor_system& sys, endpoint ep, std::string role, runtime::tls_config tls = {},
            std::string secret = {})
    : sys_(sys), ep_(std::move(ep)), role_(std::move(role)), tls_(std::move(tls)),
      secret_(std::move(secret)) {}
  ~node_link();
  node_link(const node_link&) = delete;
  node_link& operator=(const node_link&) = delete;

  /// Calls `proc` with `args` as the link's role. Connects first when not connected; when
  /// the connection is lost (errc::unavailable, network_error) it is dropped, so the next
  /// call connects again. The error is returned as is: the caller decides whether to retry.
  caf::expected<nlohmann::json> call(const std::string& proc, const nlohmann::json& args,
                                     std::chrono::milliseconds timeout = std::chrono::seconds{30});

  const endpoint& node() const { return ep_; }

private:
  /// The link's connection, connecting first when there is none (`why` says why not).
  std::optional<runtime::client> get(std::chrono::milliseconds timeout, caf::error& why);
  /// Drops `c` if it is still the link's connection (the next call connects again).
  void drop(const runtime::client& c);

  caf::actor_system& sys_;
  endpoint ep_;
  std::string role_;
  runtime::tls_config tls_;
  std::string secret_;
  std::mutex mu_;
  std::optional<runtime::client> conn_;
};

/// True for errors after which the same call may succeed later (the node is away or slow).
bool is_transient(const caf::error& e);

} // namespace comb::nectar
