// comb::html_escape: text made safe for HTML element content and quoted attribute values
// (& < > " ' as entities), for every page that shows what users or requests wrote.
#pragma once

#include <string>
#include <string_view>

namespace comb {

inline std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (char ch : s) {
    switch (ch) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    case '\'':
      out += "&#39;";
      break;
    default:
      out += ch;
    }
  }
  return out;
}

} // namespace comb
