// comb::nectar::exchange and capture_row: one HTTP request as the server saw it, and its row
// of httplog_request (nectar_spec: W3C extended log fields in snake_case, the raw request,
// base64 when it is not UTF-8, cut at 1 MiB and marked so). The raw request is rebuilt from
// what the HTTP library parsed (request line, header fields ordered by name, body): the
// library hands out no bytes of its own. Credentials never reach the row (every console user
// reads it): cookie values, Authorization credentials and password fields are masked first
// (mask_credentials); CRS labels the exchange before, as it arrived. Plain value type and
// pure functions; thread-safe.
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
  /// Bytes of the body as the client sent it, when `body` holds fewer: the server keeps at
  /// most max_raw_bytes + 1 of a body, and reads none of one it refuses for its size (413,
  /// its Content-Length counts). 0: `body` is all of it.
  size_t body_bytes = 0;
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

/// What stands for a masked header value (a cookie's value, Authorization's credentials).
inline constexpr const char* masked_header_value = "[masked]";
/// What stands for a masked form or query value: letters only, so that the anomaly model,
/// which reads form values (a cookie's it does not), sees nothing unusual where a password
/// was; the row's `masked` field says that it was masked.
inline constexpr const char* masked_form_value = "masked";

/// `x` with its credentials masked, as its row shows it: the value of every cookie of every
/// Cookie header (names kept), the credentials of Authorization and Proxy-Authorization (the
/// scheme kept), and the value of each field whose name holds "pass" or "pwd" (any case) in
/// the query string and in an application/x-www-form-urlencoded body. `what`, when given,
/// gets what was masked: "cookie", "authorization", "query:NAME", "form:NAME".
exchange mask_credentials(const exchange& x, std::vector<std::string>* what = nullptr);

/// The httplog_request row of `x` (without the rule fields, which the capture worker adds,
/// and without the id), credentials masked (mask_credentials; its `masked` field lists
/// what was, comma-separated, "" when nothing; cs_bytes counts the request as it came,
/// body_bytes included). `truncated` is true when raw holds less than the request: cut at
/// max_raw_bytes, or a body the server did not keep (body_bytes).
nlohmann::json capture_row(const exchange& x);

} // namespace comb::nectar
