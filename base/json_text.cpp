#include "base/json_text.hpp"

#include <array>
#include <charconv>

namespace comb {

namespace {

using nlohmann::json;

// For each byte: whether dump() writes it as it is inside a string (printable ASCII, not a
// quote or backslash; dump() escapes those and control characters, and validates UTF-8).
constexpr auto plain_byte = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c)
    t[c] = c != '"' && c != '\\';
  return t;
}();

// True when dump() writes `s` as it is between quotes.
bool plain(const std::string& s) {
  for (unsigned char c : s)
    if (!plain_byte[c])
      return false;
  return true;
}

void append_string(std::string& out, const std::string& s) {
  if (plain(s)) {
    out.push_back('"');
    out.append(s);
    out.push_back('"');
  } else {
    out.append(json(s).dump());
  }
}

template <class Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, end);
}

} // namespace

void append_json_text(std::string& out, const json& value) {
  switch (value.type()) {
  case json::value_t::object: {
    out.push_back('{');
    bool first = true;
    for (const auto& [key, v] : *value.get_ptr<const json::object_t*>()) {
      if (!first)
        out.push_back(',');
      first = false;
      append_string(out, key);
      out.push_back(':');
      append_json_text(out, v);
    }
    out.push_back('}');
    return;
  }
  case json::value_t::array: {
    out.push_back('[');
    bool first = true;
    for (const auto& v : *value.get_ptr<const json::array_t*>()) {
      if (!first)
        out.push_back(',');
      first = false;
      append_json_text(out, v);
    }
    out.push_back(']');
    return;
  }
  case json::value_t::string:
    append_string(out, *value.get_ptr<const std::string*>());
    return;
  case json::value_t::boolean:
    out.append(value.get<bool>() ? "true" : "false");
    return;
  case json::value_t::null:
    out.append("null");
    return;
  case json::value_t::number_integer:
    append_int(out, value.get<json::number_integer_t>());
    return;
  case json::value_t::number_unsigned:
    append_int(out, value.get<json::number_unsigned_t>());
    return;
  default: // floats (dump()'s own shortest form), binary, discarded
    out.append(value.dump());
    return;
  }
}

std::string json_text(const json& value) {
  std::string out;
  out.reserve(64);
  append_json_text(out, value);
  return out;
}

} // namespace comb
