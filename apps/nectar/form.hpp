// comb::nectar form input: strict parsing of application/x-www-form-urlencoded text (query
// strings and form bodies) and the checks of Nectar's fields (usernames, passwords, display
// names, post text, search text). Every error names the field and what is wrong with it, so
// the server can answer 400 with that text. Stateless functions; thread-safe.
#pragma once

#include <caf/expected.hpp>

#include <map>
#include <string>
#include <string_view>

namespace comb::nectar {

/// Decoded fields of a form, by name.
using form_fields = std::map<std::string, std::string, std::less<>>;

/// Largest form (body or query) parsed, bytes.
inline constexpr size_t max_form_bytes = 64 * 1024;

/// Parses "a=1&b=x+y%21": '+' is a space, %XX a byte. Errors (errc::invalid_argument): a '%'
/// not followed by two hex digits (naming the offset), a field given twice, a name or value
/// that is not UTF-8 once decoded, more than 64 fields; errc::too_large above max_form_bytes.
caf::expected<form_fields> parse_form(std::string_view text);

/// The field `name`, or "" when absent.
std::string field(const form_fields& f, std::string_view name);

/// 3-32 characters of [A-Za-z0-9_.-]; the error says which rule failed.
caf::error check_username(std::string_view s);
/// 8-128 bytes.
caf::error check_password(std::string_view s);
/// 0-64 bytes of UTF-8 without control characters (empty: the username is shown).
caf::error check_display_name(std::string_view s);
/// 1-2000 bytes of UTF-8, not only white space.
caf::error check_post_text(std::string_view s);
/// 0-200 bytes of UTF-8.
caf::error check_search_text(std::string_view s);

/// `s` with ASCII letters lowered (usernames compare without case).
std::string lower_ascii(std::string_view s);

} // namespace comb::nectar
