// comb base64: binary data inside JSON text (model chunks through the gateway, whose
// arguments travel as JSON text). Stateless; thread-safe.
#pragma once

#include <caf/expected.hpp>

#include <string>
#include <string_view>

namespace comb {

/// Standard base64 with padding.
std::string base64_encode(std::string_view bytes);

/// Decodes standard base64; invalid characters or length give errc::invalid_argument.
caf::expected<std::string> base64_decode(std::string_view text);

} // namespace comb
