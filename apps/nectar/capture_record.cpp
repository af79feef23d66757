// exchange -> httplog_request row (see capture_record.hpp).
#include "apps/nectar/capture_record.hpp"
#include "base/ascii.hpp"

#include "apps/anomaly/anomaly_app.hpp"
#include "base/base64.hpp"

#include <cctype>
#include <ctime>

namespace comb::nectar {

using nlohmann::json;

namespace {

/// Text as it can sit in a JSON string: UTF-8 as it is, anything else with each byte that is
/// not ASCII written as \xNN (header fields are shown, not decoded; raw keeps the bytes).
std::string printable(std::string_view s) {
  if (anomaly::is_utf8(s))
    return std::string{s};
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      static constexpr char digits[] = "0123456789abcdef";
      out += "\\x";
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

} // namespace

std::string raw_request(const exchange& x) {
  std::string raw;
  size_t n = x.method.size() + x.target.size() + x.version.size() + x.body.size() + 8;
  for (auto& [k, v] : x.headers)
    n += k.size() + v.size() + 4;
  raw.reserve(n);
  raw += x.method;
  raw += ' ';
  raw += x.target;
  raw += ' ';
  raw += x.version;
  raw += "\r\n";
  for (auto& [k, v] : x.headers) {
    raw += k;
    raw += ": ";
    raw += v;
    raw += "\r\n";
  }
  raw += "\r\n";
  raw += x.body;
  return raw;
}

std::string header_value(const exchange& x, std::string_view name) {
  for (auto& [k, v] : x.headers)
    if (iequals(k, name))
      return v;
  return {};
}

json capture_row(const exchange& x) {
  auto secs = static_cast<time_t>(x.ts_ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char date[16], time[16];
  std::strftime(date, sizeof(date), "%Y-%m-%d", &tm);
  std::strftime(time, sizeof(time), "%H:%M:%S", &tm);
  auto q = x.target.find('?');
  std::string_view target{x.target};
  auto stem = target.substr(0, q);
  auto query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  auto raw = raw_request(x);
  auto cs_bytes = raw.size();
  bool truncated = raw.size() > max_raw_bytes;
  if (truncated)
    raw.resize(max_raw_bytes);
  bool text = anomaly::is_utf8(raw);
  // A cut may split a UTF-8 sequence: then the row holds base64 like any other bytes.
  return json{{"date", date},
              {"time", time},
              {"ts_ns", x.ts_ns},
              {"c_ip", x.remote_addr},
              {"cs_method", printable(x.method)},
              {"cs_uri_stem", printable(stem)},
              {"cs_uri_query", printable(query)},
              {"sc_status", x.status},
              {"cs_user_agent", printable(header_value(x, "User-Agent"))},
              {"cs_referer", printable(header_value(x, "Referer"))},
              {"cs_cookie", printable(header_value(x, "Cookie"))},
              {"cs_bytes", cs_bytes},
              {"sc_bytes", x.response_bytes},
              {"time_taken_ms", x.time_taken_ms},
              {"raw", text ? raw : base64_encode(raw)},
              {"raw_encoding", text ? "text" : "base64"},
              {"truncated", truncated},
              {"execution_id", x.execution_id},
              {"trace_id", printable(header_value(x, "X-Nectar-Trace"))}};
}

} // namespace comb::nectar
