// Fuzz target: Nectar's capture path. The input is split into the parts of a request (method,
// target, version, header fields, body) as the HTTP server would hand them over; the form
// parser reads the query and the body, and capture_row builds the httplog_request row. The
// row must serialise as JSON and as MessagePack (as the node stores it), its raw request must
// decode back to the bytes it was built from with the credentials masked (cut at 1 MiB
// exactly when marked truncated), and cs_bytes must count the whole request as it came.
#include "apps/nectar/capture_record.hpp"
#include "apps/nectar/form.hpp"
#include "base/base64.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using namespace comb::nectar;

namespace {

std::string_view take(std::string_view& in) {
  auto p = in.find('\n');
  auto part = in.substr(0, p);
  in = p == std::string_view::npos ? std::string_view{} : in.substr(p + 1);
  return part;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in{reinterpret_cast<const char*>(data), size};
  exchange x;
  x.method = take(in);
  x.target = take(in);
  x.version = take(in);
  for (auto line = take(in); !line.empty() && x.headers.size() < 64; line = take(in)) {
    auto colon = line.find(':');
    x.headers.emplace_back(std::string{line.substr(0, colon)},
                           colon == std::string_view::npos ? std::string{}
                                                           : std::string{line.substr(colon + 1)});
  }
  x.body = in;
  x.status = 200;
  x.ts_ns = static_cast<int64_t>(size) * 1'000'000'007LL;
  auto q = x.target.find('?');
  // The parser either refuses or gives at most 64 fields.
  if (q != std::string::npos)
    if (auto f = parse_form(std::string_view{x.target}.substr(q + 1)); f && f->size() > 64)
      std::abort();
  if (auto f = parse_form(x.body); f && f->size() > 64)
    std::abort();
  auto row = capture_row(x);
  if (row.dump().empty())
    std::abort();
  auto packed = nlohmann::json::to_msgpack(row);
  if (nlohmann::json::from_msgpack(packed) != row)
    std::abort();
  // The row keeps the request with its credentials masked (cookie values, Authorization,
  // password-like fields), and counts it in cs_bytes as it came.
  auto raw = raw_request(mask_credentials(x));
  std::string stored = row["raw"];
  if (row["raw_encoding"] == "base64") {
    auto b = comb::base64_decode(stored);
    if (!b)
      std::abort();
    stored = *b;
  }
  bool truncated = row["truncated"];
  if (truncated != (raw.size() > max_raw_bytes))
    std::abort();
  if (stored != raw.substr(0, max_raw_bytes))
    std::abort();
  if (row["cs_bytes"] != raw_request(x).size())
    std::abort();
  return 0;
}
