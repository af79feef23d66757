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
/// 1: SQL, shells, HTML/JS, templates, some LDAP/XPath, server-side code. 2: 1 plus MongoDB
/// operators ('$ne', with the '$'), LDAP attribute types, XPath functions and axes, HTTP
/// header names (CR/LF injection), JavaScript control words (sources in keywords.cpp).
inline constexpr int keyword_list_version = 2;

/// True when `lower` (lowercase ASCII letters, digits or '_', or '$' and letters for a
/// MongoDB operator) is on the list of `version` (0: no list, nothing is a keyword).
bool is_keyword(std::string_view lower, int version = keyword_list_version);

/// True when the compiled-in lists are sorted (as the lookup expects); for tests.
bool keyword_lists_sorted();

} // namespace comb::anomaly
