#include "base/errc.hpp"

#include <caf/message.hpp>

namespace comb {

std::string to_string(errc x) {
  switch (x) {
  case errc::none:
    return "none";
  case errc::unknown_procedure:
    return "unknown_procedure";
  case errc::permission_denied:
    return "permission_denied";
  case errc::invalid_argument:
    return "invalid_argument";
  case errc::too_large:
    return "too_large";
  case errc::conflict:
    return "conflict";
  case errc::procedure_failed:
    return "procedure_failed";
  case errc::storage_error:
    return "storage_error";
  case errc::not_comb_folder:
    return "not_comb_folder";
  case errc::format_mismatch:
    return "format_mismatch";
  case errc::unknown_table:
    return "unknown_table";
  case errc::not_found:
    return "not_found";
  case errc::already_exists:
    return "already_exists";
  case errc::bad_config:
    return "bad_config";
  case errc::network_error:
    return "network_error";
  case errc::corrupt_data:
    return "corrupt_data";
  case errc::protocol_error:
    return "protocol_error";
  case errc::timeout:
    return "timeout";
  case errc::overloaded:
    return "overloaded";
  case errc::bad_model:
    return "bad_model";
  case errc::unsupported:
    return "unsupported";
  case errc::unavailable:
    return "unavailable";
  case errc::model_not_loaded:
    return "model_not_loaded";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

caf::error make_error(errc x) {
  return caf::error{static_cast<uint8_t>(x), errc_category};
}

caf::error make_error(errc x, std::string context) {
  return caf::error{static_cast<uint8_t>(x), errc_category, caf::make_message(std::move(context))};
}

std::string describe(const caf::error& e) {
  if (!e)
    return "ok";
  std::string out;
  if (e.category() == errc_category)
    out = to_string(static_cast<errc>(e.code()));
  else
    out = caf::to_string(e.category()) + " error " + std::to_string(e.code());
  const auto& ctx = e.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0)) {
    out += ": ";
    out += ctx.get_as<std::string>(0);
  } else if (!ctx.empty()) {
    out += ": ";
    out += caf::to_string(ctx);
  }
  return out;
}

} // namespace comb
