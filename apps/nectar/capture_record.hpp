// comb::nectar::exchange and capture_row: one HTTP request as the server saw it, and its row
// of httplog_request (nectar_spec: W3C extended log fields in snake_case, the raw request,
// base64 when it is not UTF-8, cut at 1 MiB and marked so). The raw request is rebuilt from
// what the HTTP library parsed (request line, header fields ordered by name, body): the
// library hands out no bytes of its own. Plain value type and pure functions; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace comb::nectar {

/// Largest raw request kept in a row; longer ones are cut and marked "truncated".
inline constexpr size_t max_raw_bytes = size_t{1} << 20;

/// One request and the response it got.
struct exchange {
  std::string method;
  std::string target;
  std::string version;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote_addr;
  int status = 0;
  size_t response_bytes = 0;
  /// Arrival (wall clock, ns since the epoch) and time to the response, ms.
  int64_t ts_ns = 0;
  double time_taken_ms = 0;
  /// Execution id of the Nectar procedure the request invoked, 0 if none.
  uint64_t execution_id = 0;
};

/// The request as bytes: "METHOD TARGET VERSION\r\n", "Name: value\r\n" per header, "\r\n",
/// body. Complete (not cut).
std::string raw_request(const exchange& x);

/// The first header value named `name` (case-insensitive), or "".
std::string header_value(const exchange& x, std::string_view name);

/// The httplog_request row of `x` (without the rule fields, which the capture worker adds,
/// and without the id).
nlohmann::json capture_row(const exchange& x);

} // namespace comb::nectar
