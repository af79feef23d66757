// Helpers for tests that talk to a `comb node` child process over TCP. Header only.
#pragma once

#include "node/client.hpp"

#include <chrono>
#include <thread>

namespace comb::test {

/// Connects to the node on 127.0.0.1:`port`, retrying for up to 20 s while it starts.
inline caf::expected<runtime::client> connect_retry(caf::actor_system& sys, int port) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{20};
  for (;;) {
    auto c = runtime::client::connect(sys, {"127.0.0.1", static_cast<uint16_t>(port)});
    if (c || std::chrono::steady_clock::now() > deadline)
      return c;
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
  }
}

} // namespace comb::test
