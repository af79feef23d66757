// libFuzzer target: the HTTP request parser, CSIC framing and the model-text rendering must
// never crash on arbitrary bytes, and a parsed request must render without error.
#include "apps/anomaly/csic_dataset.hpp"
#include "apps/anomaly/http_request.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

using namespace comb::anomaly;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (auto frame : frame_requests(in)) {
    if (frame.data() < in.data() || frame.data() + frame.size() > in.data() + in.size())
      __builtin_trap(); // a frame must lie inside the input
    (void) parse_http_request(frame);
  }
  auto r = parse_http_request(in);
  if (r) {
    text_options o;
    auto a = to_model_text(*r, o);
    o.sort_headers = true;
    o.cookie = text_options::cookie_mode::drop;
    auto b = to_model_text(*r, o);
    if (b.size() > a.size() + 1)
      __builtin_trap(); // dropping the cookie never makes the text longer
    if (r->method.empty() || r->url.empty())
      __builtin_trap();
  }
  bool ok = false;
  (void) to_model_text_lenient(in, {}, &ok);
  if (ok != static_cast<bool>(r) && size <= max_request_bytes)
    __builtin_trap();
  return 0;
}
