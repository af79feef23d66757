// The console's SQL: Overview pages, the request popup, Stats buckets.
#include "apps/console/console_queries.hpp"

#include "base/errc.hpp"

namespace comb::apps::console {

namespace {

using nlohmann::json;

caf::error bad(const std::string& what) {
  return make_error(errc::invalid_argument, what);
}

// Fields the table search looks in (those the store has).
const char* search_fields[] = {"request_id",  "c_ip",         "cs_method",
                               "cs_uri_stem", "cs_uri_query", "cs_user_agent",
                               "cs_referer",  "rule_ids",     "trace_id"};

json not_ready(const console_schema& schema) {
  return {{"ready", false},
          {"message",
           "no requests captured yet: the store has no table '" + schema.requests_table + "'"}};
}

// The capture's rule label, or the label row's copy where the capture has none.
std::string rule_expr(const console_schema& schema, const store_columns& cols) {
  auto r = schema.expr(*schema.field("rule_label"), cols);
  auto l = cols.label.count("rule_label") ? std::string("l.\"rule_label\"") : "NULL";
  if (r == "NULL")
    return l;
  if (l == "NULL")
    return r;
  return "COALESCE(" + r + ", " + l + ")";
}

} // namespace

caf::expected<overview_request> parse_overview_request(const json& j) {
  overview_request q;
  if (!j.is_object())
    return bad("overview query must be a JSON object");
  auto num = [&](const char* k, auto& out) -> caf::error {
    if (!j.contains(k) || j[k].is_null())
      return {};
    if (!j[k].is_number())
      return bad(std::string("'") + k + "' must be a number");
    out = j[k].get<std::decay_t<decltype(out)>>();
    return {};
  };
  if (auto e = num("threshold", q.threshold))
    return e;
  if (q.threshold < 0 || q.threshold > 1)
    return bad("'threshold' must be between 0 and 1");
  if (auto e = num("offset", q.offset))
    return e;
  if (auto e = num("limit", q.limit))
    return e;
  if (q.offset < 0)
    return bad("'offset' must not be negative");
  if (q.limit < 1 || q.limit > 500)
    return bad("'limit' must be between 1 and 500");
  // Time range in milliseconds (what a browser's numbers hold exactly).
  double from_ms = 0, to_ms = 0;
  if (auto e = num("from_ms", from_ms))
    return e;
  if (auto e = num("to_ms", to_ms))
    return e;
  q.from_ns = static_cast<int64_t>(from_ms * 1e6);
  q.to_ns = static_cast<int64_t>(to_ms * 1e6);
  if (j.contains("sort") && !j["sort"].is_null()) {
    if (!j["sort"].is_string())
      return bad("'sort' must be a field name");
    q.sort = j["sort"].get<std::string>();
  }
  if (j.contains("desc"))
    q.desc = j["desc"].is_boolean() ? j["desc"].get<bool>() : true;
  if (j.contains("search") && j["search"].is_string())
    q.search = j["search"].get<std::string>();
  if (q.search.size() > max_filter_value)
    return bad("search text longer than " + std::to_string(max_filter_value) + " bytes");
  if (j.contains("filter"))
    q.filter = j["filter"];
  return q;
}

store_columns read_store_columns(readonly_db& db, const console_schema& schema) {
  store_columns c;
  for (auto& name : db.columns(schema.requests_table))
    c.request.insert(name);
  for (auto& name : db.columns(schema.labels_table))
    c.label.insert(name);
  c.has_requests = !c.request.empty();
  c.has_labels = !c.label.empty();
  return c;
}

caf::expected<sql_fragment> overview_where(const overview_request& q, const console_schema& schema,
                                           const store_columns& cols, bool with_threshold) {
  sql_fragment w;
  std::vector<std::string> parts;
  auto field = [&](const char* name) { return schema.expr(*schema.field(name), cols); };
  if (with_threshold && q.threshold > 0) {
    parts.push_back(field("score") + " >= ?");
    w.params.push_back(q.threshold);
  }
  if (!q.search.empty()) {
    std::string any;
    for (auto* name : search_fields) {
      auto e = field(name);
      if (e == "NULL")
        continue;
      any += (any.empty() ? "" : " OR ") + e + " LIKE ? ESCAPE '\\'";
      w.params.push_back("%" + like_escape(q.search) + "%");
    }
    parts.push_back(any.empty() ? "0" : "(" + any + ")");
  }
  if (q.from_ns > 0) {
    parts.push_back(field("ts_ns") + " >= ?");
    w.params.push_back(q.from_ns);
  }
  if (q.to_ns > 0) {
    parts.push_back(field("ts_ns") + " <= ?");
    w.params.push_back(q.to_ns);
  }
  auto f = build_filter(q.filter, schema, cols);
  if (!f)
    return f.error();
  if (!f->sql.empty()) {
    parts.push_back(f->sql);
    for (auto& p : f->params)
      w.params.push_back(p);
  }
  for (size_t i = 0; i < parts.size(); ++i)
    w.sql += (i ? " AND " : " WHERE ") + parts[i];
  return w;
}

caf::expected<json> run_overview(readonly_db& db, const console_schema& schema,
                                 const overview_request& q) {
  auto cols = read_store_columns(db, schema);
  if (!cols.has_requests)
    return not_ready(schema);
  auto sort = schema.field(q.sort);
  if (!sort)
    return bad("cannot sort by '" + q.sort + "': not on the console's list of fields");
  auto where = overview_where(q, schema, cols, /*with_threshold=*/true);
  if (!where)
    return where.error();
  auto f = [&](const char* name) { return schema.expr(*schema.field(name), cols); };
  // The page's columns: EntryID (timestamp) and the request id behind it, the labels, and
  // enough of the request to recognise it.
  std::string select = "SELECT " + f("request_id") + " AS request_id, " + f("ts_ns") + " AS ts_ns, "
                       + f("label") + " AS label, " + rule_expr(schema, cols) + " AS rule_label, "
                       + f("score") + " AS score, " + f("model_version") + " AS model_version, "
                       + f("cs_method") + " AS cs_method, " + f("sc_status") + " AS sc_status, "
                       + f("cs_uri_stem") + " AS cs_uri_stem, " + f("c_ip") + " AS c_ip";
  auto order = " ORDER BY " + schema.expr(*sort, cols) + (q.desc ? " DESC" : " ASC") + ", "
               + f("request_id") + (q.desc ? " DESC" : " ASC");
  auto sql = select + " FROM " + schema.from_clause(cols) + where->sql + order
             + " LIMIT ? OFFSET ?";
  auto params = where->params;
  params.push_back(q.limit);
  params.push_back(q.offset);
  auto page = db.run(sql, params, {std::chrono::milliseconds(10000), 500});
  if (!page)
    return page.error();
  auto count_sql = "SELECT COUNT(*) FROM (SELECT 1 FROM " + schema.from_clause(cols) + where->sql
                   + " LIMIT " + std::to_string(overview_count_cap + 1) + ")";
  auto count = db.run(count_sql, where->params, {std::chrono::milliseconds(10000), 1});
  if (!count)
    return count.error();
  auto total = count->rows[0][0].get<int64_t>();
  return json{{"ready", true},
              {"columns", page->columns},
              {"rows", page->rows},
              {"total", std::min(total, overview_count_cap)},
              {"total_capped", total > overview_count_cap},
              {"sql", sql},
              {"params", params},
              {"labels_ready", cols.has_labels}};
}

caf::expected<json> run_record(readonly_db& db, const console_schema& schema,
                               const std::string& request_id) {
  auto cols = read_store_columns(db, schema);
  if (!cols.has_requests)
    return not_ready(schema);
  json fields = json::array();
  auto req = db.run("SELECT * FROM " + quote_ident(schema.requests_table) + " WHERE "
                      + quote_ident(schema.request_key) + " = ?",
                    json::array({request_id}), {std::chrono::milliseconds(5000), 1});
  if (!req)
    return req.error();
  if (req->rows.empty())
    return json{{"found", false}, {"request_id", request_id}};
  for (size_t i = 0; i < req->columns.size(); ++i)
    fields.push_back(json::array({req->columns[i], req->rows[0][i]}));
  if (cols.has_labels && cols.label.count(schema.label_request_id)) {
    auto lab = db.run("SELECT * FROM " + quote_ident(schema.labels_table) + " WHERE "
                        + quote_ident(schema.label_request_id) + " = ?",
                      json::array({request_id}), {std::chrono::milliseconds(5000), 1});
    if (!lab)
      return lab.error();
    if (!lab->rows.empty())
      for (size_t i = 0; i < lab->columns.size(); ++i)
        fields.push_back(json::array({"labeled." + lab->columns[i], lab->rows[0][i]}));
  }
  return json{{"found", true}, {"request_id", request_id}, {"fields", fields}};
}

caf::expected<json> run_stats(readonly_db& db, const console_schema& schema,
                              const overview_request& q, const std::string& bucket) {
  int64_t width = 0;
  if (bucket == "day")
    width = int64_t{86400} * 1000000000;
  else if (bucket == "hour")
    width = int64_t{3600} * 1000000000;
  else if (bucket == "minute")
    width = int64_t{60} * 1000000000;
  else
    return bad("bucket must be day, hour or minute, got '" + bucket + "'");
  auto cols = read_store_columns(db, schema);
  if (!cols.has_requests)
    return not_ready(schema);
  // Stats count anomalies among all requests in range, so the threshold goes in the SUM.
  auto where = overview_where(q, schema, cols, /*with_threshold=*/false);
  if (!where)
    return where.error();
  auto f = [&](const char* name) { return schema.expr(*schema.field(name), cols); };
  auto rule = rule_expr(schema, cols);
  json params = json::array({width, width / 1000000, q.threshold});
  auto sql = "SELECT (" + f("ts_ns") + " / ?) * ? AS t_ms, SUM(CASE WHEN " + f("score")
             + " >= ? THEN 1 ELSE 0 END) AS anomalies, SUM(CASE WHEN " + rule
             + " = 1 THEN 1 ELSE 0 END) AS rule, COUNT(*) AS total FROM " + schema.from_clause(cols)
             + where->sql + (where->sql.empty() ? " WHERE " : " AND ") + f("ts_ns")
             + " IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT 5000";
  for (auto& p : where->params)
    params.push_back(p);
  auto r = db.run(sql, params, {std::chrono::milliseconds(10000), 5000});
  if (!r)
    return r.error();
  json points = json::array();
  for (auto& row : r->rows)
    points.push_back(
      {{"t_ms", row[0]}, {"anomalies", row[1]}, {"rule", row[2]}, {"total", row[3]}});
  return json{{"ready", true}, {"bucket", bucket}, {"points", points},
              {"sql", sql},    {"params", params}, {"truncated", r->truncated}};
}

} // namespace comb::apps::console
