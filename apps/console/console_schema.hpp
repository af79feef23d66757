// comb::apps::console::console_schema: the one place that names the SQL tables and columns
// the console reads (Nectar's captured requests and their labels, as current-state tables of
// the SQL store), and the whitelist of fields a filter, a sort or a popup may name. A plain
// value type; immutable after construction, so safe to share between threads.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace comb::apps::console {

/// Which table a field lives in: the captured request, or its label row.
enum class field_source { request, label };

/// One whitelisted field: the name the browser uses and the column behind it.
struct field_def {
  std::string name;     ///< name in the API and the UI, e.g. "cs_method"
  field_source source;  ///< table it is read from
  std::string column;   ///< SQL column in that table
  bool numeric = false; ///< compared as a number (<, >, ... bind numbers)
};

/// The columns the store has now (tables appear, and gain columns, as Nectar captures and
/// labels requests): a whitelisted field whose column is missing reads as NULL.
struct store_columns {
  bool has_requests = false;
  bool has_labels = false;
  std::set<std::string> request;
  std::set<std::string> label;
};

/// Table and column names of the store. Change them here (and only here) when the SQL
/// store's names differ.
struct console_schema {
  /// Current-state table of Comb's `httplog_request`: one row per captured request.
  std::string requests_table = "httplog_request";
  /// Current-state table of Comb's `httplog_request_labeled`: one row per scored request.
  std::string labels_table = "httplog_request_labeled";
  /// Key column of the requests table (the request id; the SQL store keys rows by row_key).
  std::string request_key = "row_key";
  /// Column of the labels table that holds the request id: its key (Nectar keys a label row
  /// by the request id; the row's `request_id` field holds the same), so the join uses the
  /// table's primary key.
  std::string label_request_id = "row_key";
  /// Request timestamp in nanoseconds since the epoch (the EntryID).
  std::string ts_ns = "ts_ns";

  /// The default schema: the names of the Nectar contract.
  static const console_schema& defaults();

  /// Every field a filter, a sort or the popup may name, in display order.
  const std::vector<field_def>& fields() const { return fields_; }

  /// The field called `name`, or nullopt when it is not whitelisted.
  std::optional<field_def> field(const std::string& name) const;

  /// The SQL expression of a field: "r.<column>" or "l.<column>", quoted, or NULL when the
  /// store has no such column yet.
  std::string expr(const field_def& f, const store_columns& cols) const;

  /// FROM clause joining requests (alias r) with their labels (alias l); a labels table
  /// that does not exist yet joins as an empty one.
  std::string from_clause(const store_columns& cols) const;

  console_schema();

private:
  std::vector<field_def> fields_;
};

/// Quotes an SQL identifier ("a""b"); used only on whitelisted names.
std::string quote_ident(const std::string& name);

} // namespace comb::apps::console
