// comb::json_text: the compact JSON text of a value, byte for byte what
// nlohmann::json::dump() gives, written faster. Provenance records carry every invocation's
// arguments and result as JSON text, so each transaction dumps two values; dump() spends most
// of its time on set-up (an output adapter, the locale) and on checking every character of
// every string as UTF-8. Here objects, arrays, integers, booleans, null and strings of
// printable ASCII are written directly, and anything else (floats, strings that need escapes
// or hold UTF-8, binary values) goes through dump() itself, so the text never differs.
// Stateless and thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace comb {

/// Appends the compact JSON text of `value` to `out`: the same bytes as `value.dump()`.
/// Throws what dump() throws (nlohmann::json::type_error for a string that is not UTF-8).
void append_json_text(std::string& out, const nlohmann::json& value);

/// The compact JSON text of `value`: the same bytes as `value.dump()`.
std::string json_text(const nlohmann::json& value);

} // namespace comb
