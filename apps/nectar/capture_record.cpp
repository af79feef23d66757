// exchange -> httplog_request row (see capture_record.hpp).
#include "apps/nectar/capture_record.hpp"
#include "base/ascii.hpp"

#include "apps/anomaly/anomaly_app.hpp"
#include "base/base64.hpp"

#include <algorithm>
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

/// The size of raw_request(x) with the body as the client sent it, without making it.
size_t raw_size(const exchange& x) {
  size_t n = x.method.size() + x.target.size() + x.version.size()
             + std::max(x.body.size(), x.body_bytes) + 6;
  for (auto& [k, v] : x.headers)
    n += k.size() + v.size() + 4;
  return n;
}

/// True when a field of this (still encoded) name holds a password.
bool password_like(std::string_view name) {
  std::string low;
  for (char c : name)
    low += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return low.find("pass") != std::string::npos || low.find("pwd") != std::string::npos;
}

/// "a=1&password=x" -> "a=1&password=masked"; notes "<where>:NAME" for each field masked.
std::string mask_form(std::string_view text, const char* where, std::vector<std::string>* what) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i <= text.size()) {
    auto amp = text.find('&', i);
    auto seg = text.substr(i, amp == std::string_view::npos ? std::string_view::npos : amp - i);
    auto eq = seg.find('=');
    if (eq != std::string_view::npos && password_like(seg.substr(0, eq))) {
      out.append(seg.substr(0, eq + 1));
      out += masked_form_value;
      if (what)
        what->push_back(std::string{where} + ":" + std::string{seg.substr(0, eq)});
    } else {
      out.append(seg);
    }
    if (amp == std::string_view::npos)
      break;
    out += '&';
    i = amp + 1;
  }
  return out;
}

/// "a=1; b=2" -> "a=[masked]; b=[masked]" (a part without '=' is all value).
std::string mask_cookies(std::string_view v) {
  std::string out;
  size_t i = 0;
  while (i < v.size()) {
    auto semi = v.find(';', i);
    auto part = v.substr(i, semi == std::string_view::npos ? std::string_view::npos : semi - i);
    size_t lead = 0;
    while (lead < part.size() && part[lead] == ' ')
      ++lead;
    out.append(part.substr(0, lead));
    part.remove_prefix(lead);
    auto eq = part.find('=');
    if (eq != std::string_view::npos)
      out.append(part.substr(0, eq + 1));
    if (!part.empty())
      out += masked_header_value;
    if (semi == std::string_view::npos)
      break;
    out += ';';
    i = semi + 1;
  }
  return out;
}

} // namespace

exchange mask_credentials(const exchange& x, std::vector<std::string>* what) {
  exchange out = x;
  bool cookie = false, auth = false;
  for (auto& [k, v] : out.headers) {
    if (iequals(k, "Cookie") && !v.empty()) {
      v = mask_cookies(v);
      cookie = true;
    } else if ((iequals(k, "Authorization") || iequals(k, "Proxy-Authorization")) && !v.empty()) {
      auto sp = v.find(' ');
      v = sp == std::string::npos ? std::string{masked_header_value}
                                  : v.substr(0, sp + 1) + masked_header_value;
      auth = true;
    }
  }
  if (what && cookie)
    what->push_back("cookie");
  if (what && auth)
    what->push_back("authorization");
  if (auto q = out.target.find('?'); q != std::string::npos)
    out.target = out.target.substr(0, q + 1)
                 + mask_form(std::string_view{out.target}.substr(q + 1), "query", what);
  auto type = header_value(x, "Content-Type");
  if (iequals(type.substr(0, 33), "application/x-www-form-urlencoded"))
    out.body = mask_form(out.body, "form", what);
  return out;
}

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

json capture_row(const exchange& seen) {
  std::vector<std::string> what;
  auto x = mask_credentials(seen, &what);
  std::string masked;
  for (auto& w : what)
    masked += (masked.empty() ? "" : ",") + w;
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
  auto cs_bytes = raw_size(seen); // as it came, not as masked
  bool truncated = raw.size() > max_raw_bytes || x.body_bytes > x.body.size();
  if (raw.size() > max_raw_bytes)
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
              {"trace_id", printable(header_value(x, "X-Nectar-Trace"))},
              {"masked", printable(masked)}}; // field names are the client's bytes
}

} // namespace comb::nectar
