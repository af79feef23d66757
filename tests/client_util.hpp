// Helpers for tests that talk to a `comb node` child process over TCP. Header only.
#pragma once

#include "node/client.hpp"
#include "tests/test_util.hpp"

#include <chrono>
#include <string>

namespace comb::test {

/// Connects to the node on 127.0.0.1:`port` once it accepts connections: retries while it
/// starts, for up to `timeout`, and returns the last attempt's error after that.
inline caf::expected<runtime::client> connect_retry(
  caf::actor_system& sys, int port, std::chrono::milliseconds timeout = std::chrono::seconds{30}) {
  caf::expected<runtime::client> c = make_error(errc::unavailable, "not tried");
  wait_until(
    [&] {
      c = runtime::client::connect(sys, {"127.0.0.1", static_cast<uint16_t>(port)});
      return static_cast<bool>(c);
    },
    timeout, "a node accepting clients on 127.0.0.1:" + std::to_string(port));
  return c;
}

} // namespace comb::test
