// comb::apps::console queries: what the Overview, the request popup and Stats ask of the SQL
// store, built as SQL over the schema's names with every value bound, and run on a
// read-only connection. Free functions over one readonly_db; as thread-safe as that is
// (one per thread).
#pragma once

#include "apps/console/console_schema.hpp"
#include "apps/console/filter_sql.hpp"
#include "apps/console/readonly_sql.hpp"

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace comb::apps::console {

/// What the Overview table shows: one page of requests at or above a score threshold.
struct overview_request {
  double threshold = 0.5;     ///< score >= threshold; 0 shows unscored requests too
  std::string sort = "ts_ns"; ///< a whitelisted field
  bool desc = true;
  std::string search;             ///< text looked for in the request's main fields
  nlohmann::json filter;          ///< advanced filter (build_filter), null for none
  int64_t from_ns = 0, to_ns = 0; ///< time range from the Stats brush; 0 = open
  int64_t offset = 0;
  int64_t limit = 50; ///< 1..500
  /// Keyset paging: the page after `after` or before `before` (each the cursor text a page
  /// gave as `last` or `first`: [sort value, request id] of its last or first row), in the
  /// same order; null: the page at `offset`. A deep page then costs what the
  /// first does (an index seek), where OFFSET reads and drops every row before it.
  nlohmann::json after, before;
};

/// Reads an overview_request from the browser's JSON, naming any bad member.
caf::expected<overview_request> parse_overview_request(const nlohmann::json& j);

/// Which columns the store has now.
store_columns read_store_columns(readonly_db& db, const console_schema& schema);

/// The WHERE clause shared by the Overview and Stats (threshold, search, filter, range).
caf::expected<sql_fragment> overview_where(const overview_request& q, const console_schema& schema,
                                           const store_columns& cols, bool with_threshold);

/// One page: {ready, first, last (page cursors), columns, rows, total, total_capped, sql,
/// params}. When the requests
/// table does not exist yet: {ready: false, message}.
caf::expected<nlohmann::json> run_overview(readonly_db& db, const console_schema& schema,
                                           const overview_request& q);

/// Every field of one request and of its label row: {found, fields: [[name, value], ...]}.
caf::expected<nlohmann::json> run_record(readonly_db& db, const console_schema& schema,
                                         const std::string& request_id);

/// Counts per bucket ("day", "hour", "minute"): {ready, bucket, points: [{t_ms, anomalies,
/// rule, total}], sql, params}; anomalies are requests at or above the threshold.
caf::expected<nlohmann::json> run_stats(readonly_db& db, const console_schema& schema,
                                        const overview_request& q, const std::string& bucket);

/// At most this many rows are counted for the Overview's total ("more than N").
constexpr int64_t overview_count_cap = 100000;

} // namespace comb::apps::console
