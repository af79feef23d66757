// comb::apps::console::console_link: the console's connection to its Comb node, over which it
// reads and writes accounts and fetches raw request bytes (console_app.hpp's procedures).
// Connects on first use and again after a lost connection, so a node restart does not end the
// console. Thread-safe: the server's threads share one connection.
#pragma once

#include "base/endpoint.hpp"
#include "node/client.hpp"

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

namespace comb::apps::console {

class console_link {
public:
  /// `tls` and `secret`: how to reach a node of a secured cluster (node/client.hpp's connect;
  /// the actor system must have had system_config::set_tls with the same files).
  console_link(caf::actor_system& sys, endpoint node, std::string role = "console",
               runtime::tls_config tls = {}, std::string secret = {})
    : sys_(sys), node_(std::move(node)), role_(std::move(role)), tls_(std::move(tls)),
      secret_(std::move(secret)) {}

  /// Calls `proc` with `args` on the node as the link's role; errors name the node. A lost
  /// connection (unavailable, network_error) is forgotten, so the next call connects again.
  caf::expected<nlohmann::json> call(const std::string& proc, const nlohmann::json& args,
                                     std::chrono::milliseconds timeout = std::chrono::seconds{15});

  /// "HOST:PORT" of the node.
  std::string node_text() const;

private:
  caf::actor_system& sys_;
  endpoint node_;
  std::string role_;
  runtime::tls_config tls_;
  std::string secret_;
  std::mutex mu_;
  std::optional<runtime::client> conn_;
};

} // namespace comb::apps::console
