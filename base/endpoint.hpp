// comb::endpoint: a "host:port" pair as given on command lines and in cluster
// configs. Plain value type.
#pragma once

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace comb {

struct endpoint {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string to_string() const { return host + ":" + std::to_string(port); }
};

/// Parses "HOST:PORT" (or ":PORT" / "PORT", meaning 127.0.0.1); a clear error otherwise.
caf::expected<endpoint> parse_endpoint(std::string_view text);

} // namespace comb
