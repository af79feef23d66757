// comb::iequals: ASCII case-insensitive equality (HTTP field names, W3C log fields), the same
// in every locale. Header-only; thread-safe.
#pragma once

#include <string_view>

namespace comb {

/// `c` with A-Z mapped to a-z; every other byte unchanged.
constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

/// True when `a` and `b` differ at most in the case of ASCII letters.
constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i]))
      return false;
  return true;
}

} // namespace comb
