// comb::apps::console::build_filter: turns the Overview's advanced filter (a tree of field
// conditions composed with AND / OR, as JSON from the browser) into a WHERE fragment whose
// values are all bound parameters: no text of a value ever reaches the SQL, and field names
// must be on the schema's whitelist. Pure functions; thread-safe.
#pragma once

#include "apps/console/console_schema.hpp"

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <string>

namespace comb::apps::console {

/// SQL text with anonymous `?` placeholders and the values they take, in order.
struct sql_fragment {
  std::string sql;
  nlohmann::json params = nlohmann::json::array(); ///< strings and numbers
};

/// Limits on a filter tree, so a request cannot make an unbounded query.
constexpr int max_filter_depth = 8;
constexpr int max_filter_conditions = 64;
constexpr size_t max_filter_value = 4096;

/// Builds the condition of `filter`:
///   node := {"op": "and"|"or", "items": [node, ...]}
///         | {"field": NAME, "cmp": CMP, "value": TEXT-OR-NUMBER}
///   CMP  := = != < <= > >= contains not_contains starts_with ends_with is_empty is_not_empty
/// An empty group (or a null filter) is no condition: the result's sql is empty. Errors
/// (errc::invalid_argument) name the field, comparison or value at fault and where.
caf::expected<sql_fragment> build_filter(const nlohmann::json& filter, const console_schema& schema,
                                         const store_columns& cols);

/// Escapes %, _ and \ for a LIKE pattern used with ESCAPE '\'.
std::string like_escape(const std::string& text);

} // namespace comb::apps::console
