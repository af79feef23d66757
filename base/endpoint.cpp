#include "base/endpoint.hpp"

#include "base/errc.hpp"

#include <charconv>

namespace comb {

caf::expected<endpoint> parse_endpoint(std::string_view text) {
  endpoint ep;
  auto colon = text.rfind(':');
  std::string_view port_text = text;
  if (colon != std::string_view::npos) {
    if (colon > 0)
      ep.host = std::string{text.substr(0, colon)};
    port_text = text.substr(colon + 1);
  }
  unsigned long port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc{} || ptr != port_text.data() + port_text.size()
      || port > 65535)
    return make_error(errc::invalid_argument,
                      "'" + std::string{text} + "' is not HOST:PORT with a port in 0..65535");
  ep.port = static_cast<uint16_t>(port);
  return ep;
}

} // namespace comb
