// The console's table and column names and its field whitelist.
#include "apps/console/console_schema.hpp"

namespace comb::apps::console {

console_schema::console_schema() {
  auto req = [&](const char* n, bool numeric = false) {
    fields_.push_back({n, field_source::request, n, numeric});
  };
  auto lab = [&](const char* name, const char* column, bool numeric = false) {
    fields_.push_back({name, field_source::label, column, numeric});
  };
  // The W3C fields of the capture (Nectar spec), then the label row's.
  fields_.push_back({"request_id", field_source::request, request_key, false});
  req("ts_ns", true);
  req("date");
  req("time");
  req("c_ip");
  req("cs_method");
  req("cs_uri_stem");
  req("cs_uri_query");
  req("sc_status", true);
  req("cs_user_agent");
  req("cs_referer");
  req("cs_cookie");
  req("cs_bytes", true);
  req("sc_bytes", true);
  req("time_taken_ms", true);
  req("raw");
  req("raw_encoding");
  req("truncated", true);
  req("execution_id", true);
  req("trace_id");
  req("rule_label", true);
  req("rule_ids");
  req("rule_score", true);
  lab("score", "score", true);
  lab("label", "label", true);
  lab("threshold", "threshold", true);
  lab("model", "model");
  lab("model_version", "model_version", true);
  lab("combined_label", "combined_label", true);
}

const console_schema& console_schema::defaults() {
  static const console_schema s;
  return s;
}

std::optional<field_def> console_schema::field(const std::string& name) const {
  for (auto& f : fields_)
    if (f.name == name)
      return f;
  return std::nullopt;
}

std::string quote_ident(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"')
      out += '"';
    out += c;
  }
  return out + "\"";
}

std::string console_schema::expr(const field_def& f, const store_columns& cols) const {
  auto& have = f.source == field_source::request ? cols.request : cols.label;
  if (!have.count(f.column))
    return "NULL";
  return (f.source == field_source::request ? "r." : "l.") + quote_ident(f.column);
}

std::string console_schema::from_clause(const store_columns& cols) const {
  auto r = quote_ident(requests_table) + " AS r";
  if (!cols.has_labels || !cols.label.count(label_request_id))
    return r + " LEFT JOIN (SELECT NULL AS x WHERE 0) AS l ON 0";
  return r + " LEFT JOIN " + quote_ident(labels_table) + " AS l ON l."
         + quote_ident(label_request_id) + " = r." + quote_ident(request_key);
}

} // namespace comb::apps::console
