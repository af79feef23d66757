// Nectar's form parsing and field checks (see form.hpp).
#include "apps/nectar/form.hpp"

#include "apps/anomaly/anomaly_app.hpp"
#include "base/errc.hpp"

namespace comb::nectar {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

caf::expected<std::string> decode(std::string_view s, size_t offset) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      int hi = i + 1 < s.size() ? hex_value(s[i + 1]) : -1;
      int lo = i + 2 < s.size() ? hex_value(s[i + 2]) : -1;
      if (hi < 0 || lo < 0)
        return make_error(errc::invalid_argument,
                          "invalid percent escape at byte " + std::to_string(offset + i)
                            + " (a '%' must be followed by two hex digits)");
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

bool has_control(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f)
      return true;
  return false;
}

} // namespace

caf::expected<form_fields> parse_form(std::string_view text) {
  if (text.size() > max_form_bytes)
    return make_error(errc::too_large, "form of " + std::to_string(text.size())
                                         + " bytes is larger than "
                                         + std::to_string(max_form_bytes));
  form_fields out;
  size_t pos = 0;
  while (pos <= text.size() && !text.empty()) {
    auto end = text.find('&', pos);
    if (end == std::string_view::npos)
      end = text.size();
    auto part = text.substr(pos, end - pos);
    if (!part.empty()) {
      auto eq = part.find('=');
      auto name = decode(part.substr(0, eq), pos);
      if (!name)
        return std::move(name.error());
      std::string value;
      if (eq != std::string_view::npos) {
        auto v = decode(part.substr(eq + 1), pos + eq + 1);
        if (!v)
          return std::move(v.error());
        value = std::move(*v);
      }
      if (!anomaly::is_utf8(*name) || !anomaly::is_utf8(value))
        return make_error(errc::invalid_argument,
                          "field at byte " + std::to_string(pos) + " is not UTF-8 once decoded");
      if (out.count(*name))
        return make_error(errc::invalid_argument, "field '" + *name + "' is given twice");
      if (out.size() >= 64)
        return make_error(errc::invalid_argument, "more than 64 fields");
      out.emplace(std::move(*name), std::move(value));
    }
    pos = end + 1;
  }
  return out;
}

std::string field(const form_fields& f, std::string_view name) {
  auto i = f.find(name);
  return i == f.end() ? std::string{} : i->second;
}

caf::error check_username(std::string_view s) {
  if (s.size() < 3 || s.size() > 32)
    return make_error(errc::invalid_argument,
                      "username must be 3 to 32 characters (got " + std::to_string(s.size()) + ")");
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
          || c == '.' || c == '-'))
      return make_error(errc::invalid_argument,
                        "username may hold only letters, digits, '_', '.' and '-'");
  return {};
}

caf::error check_password(std::string_view s) {
  if (s.size() < 8 || s.size() > 128)
    return make_error(errc::invalid_argument,
                      "password must be 8 to 128 bytes (got " + std::to_string(s.size()) + ")");
  return {};
}

caf::error check_display_name(std::string_view s) {
  if (s.size() > 64)
    return make_error(errc::invalid_argument, "display name must be at most 64 bytes (got "
                                                + std::to_string(s.size()) + ")");
  if (!anomaly::is_utf8(s) || has_control(s))
    return make_error(errc::invalid_argument,
                      "display name must be UTF-8 text without control characters");
  return {};
}

caf::error check_post_text(std::string_view s) {
  if (s.empty() || s.size() > 2000)
    return make_error(errc::invalid_argument,
                      "post text must be 1 to 2000 bytes (got " + std::to_string(s.size()) + ")");
  if (!anomaly::is_utf8(s))
    return make_error(errc::invalid_argument, "post text must be UTF-8");
  if (s.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return make_error(errc::invalid_argument, "post text is only white space");
  return {};
}

caf::error check_search_text(std::string_view s) {
  if (s.size() > 200)
    return make_error(errc::invalid_argument, "search text must be at most 200 bytes (got "
                                                + std::to_string(s.size()) + ")");
  if (!anomaly::is_utf8(s))
    return make_error(errc::invalid_argument, "search text must be UTF-8");
  return {};
}

std::string lower_ascii(std::string_view s) {
  std::string out{s};
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return out;
}

} // namespace comb::nectar
