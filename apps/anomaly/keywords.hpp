// comb::anomaly keywords: the words of SQL, shells, HTML/JavaScript, template languages,
// LDAP/XPath and server-side code that the detector's value folding keeps as words (every
// other letter of a value is folded to a/A). The list is compiled in and versioned: a model
// file records the version it was trained with (text.keywords), so a changed list never
// silently changes what an old model sees. Sources are named in keywords.cpp. Immutable;
// thread-safe.
#pragma once

#include <string_view>

namespace comb::anomaly {

/// Version of the compiled-in list; text_options::keywords holds the one a model uses.
inline constexpr int keyword_list_version = 1;

/// True when `lower` (lowercase ASCII letters, digits or '_') is on the list.
bool is_keyword(std::string_view lower);

} // namespace comb::anomaly
