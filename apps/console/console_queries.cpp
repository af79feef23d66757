// The console's SQL: Overview pages, the request popup, Stats buckets.
#include "apps/console/console_queries.hpp"

#include "base/errc.hpp"

#include <algorithm>

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
  for (auto* k : {"after", "before"}) {
    if (!j.contains(k) || j[k].is_null())
      continue;
    // A cursor travels as the text the last page gave (numbers such as ts_ns need all 64
    // bits, which a browser's numbers do not hold).
    if (!j[k].is_string())
      return bad(std::string("'") + k + "' must be a page cursor (text)");
    auto c = json::parse(j[k].get<std::string>(), nullptr, /*allow_exceptions=*/false);
    if (!c.is_array() || c.size() != 2 || !c[1].is_string()
        || !(c[0].is_null() || c[0].is_number() || c[0].is_string()))
      return bad(std::string("'") + k + "' is not a page cursor of the Overview");
    (std::string(k) == "after" ? q.after : q.before) = c;
  }
  if (!q.after.is_null() && !q.before.is_null())
    return bad("give 'after' or 'before', not both");
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
                       + f("cs_uri_stem") + " AS cs_uri_stem, " + f("c_ip") + " AS c_ip, "
                       + schema.expr(*sort, cols) + " AS sort_key";
  auto sort_expr = schema.expr(*sort, cols);
  auto id_expr = f("request_id");
  // Keyset paging walks the order from a cursor row; a previous page is the next page of the
  // reversed order, turned back. SQLite sorts NULL below every value.
  json cursor = !q.after.is_null() ? q.after : q.before;
  if (cursor.is_string()) // the text a page gave, passed on as it came
    cursor = json::parse(cursor.get<std::string>(), nullptr, /*allow_exceptions=*/false);
  if (!cursor.is_null() && (!cursor.is_array() || cursor.size() != 2 || !cursor[1].is_string()))
    return bad("not a page cursor of the Overview");
  bool reversed = !q.before.is_null();
  bool asc = q.desc == reversed;
  auto order_by = [&](const std::string& s) {
    auto dir = asc ? " ASC" : " DESC";
    return " ORDER BY " + s + dir + ", " + id_expr + dir;
  };
  auto page_sql = [&](const std::string& cond) {
    auto w = where->sql + (cond.empty() ? "" : (where->sql.empty() ? " WHERE " : " AND ") + cond);
    return select + " FROM " + schema.from_clause(cols) + w;
  };
  std::string sql;
  json params = where->params;
  // After a non-NULL cursor in descending order the NULL rows come last: a second query tops
  // the page up with them, so that each query can seek the sort column's index (an OR of
  // both would scan).
  std::string null_sql;
  json null_params;
  if (cursor.is_null()) {
    sql = page_sql("") + order_by(sort_expr) + " LIMIT ? OFFSET ?";
    params.push_back(q.limit);
    params.push_back(q.offset);
  } else {
    const auto& v = cursor[0];
    const auto& id = cursor[1];
    auto S = sort_expr, R = id_expr;
    if (!v.is_null()) {
      auto cmp = asc ? ">" : "<";
      sql = page_sql(S + (asc ? " >= ?" : " <= ?") + " AND (" + S + " " + cmp + " ? OR " + R + " "
                     + cmp + " ?)");
      params.push_back(v);
      params.push_back(v);
      params.push_back(id);
      if (!asc) {
        null_sql = page_sql(S + " IS NULL") + order_by(S) + " LIMIT ?";
        null_params = where->params;
      }
    } else if (asc) {
      sql = page_sql("((" + S + " IS NULL AND " + R + " > ?) OR " + S + " IS NOT NULL)");
      params.push_back(id);
    } else {
      sql = page_sql(S + " IS NULL AND " + R + " < ?");
      params.push_back(id);
    }
    sql += order_by(S) + " LIMIT ?";
    params.push_back(q.limit);
  }
  auto page = db.run(sql, params, {std::chrono::milliseconds(10000), 500});
  if (!page)
    return page.error();
  if (!null_sql.empty() && static_cast<int64_t>(page->rows.size()) < q.limit) {
    null_params.push_back(q.limit - static_cast<int64_t>(page->rows.size()));
    auto rest = db.run(null_sql, null_params, {std::chrono::milliseconds(10000), 500});
    if (!rest)
      return rest.error();
    for (auto& row : rest->rows)
      page->rows.push_back(row);
  }
  if (reversed)
    std::reverse(page->rows.begin(), page->rows.end());
  auto count_sql = "SELECT COUNT(*) FROM (SELECT 1 FROM " + schema.from_clause(cols) + where->sql
                   + " LIMIT " + std::to_string(overview_count_cap + 1) + ")";
  auto count = db.run(count_sql, where->params, {std::chrono::milliseconds(10000), 1});
  if (!count)
    return count.error();
  auto total = count->rows[0][0].get<int64_t>();
  // The cursors of this page, for the browser's next and previous pages.
  json first = nullptr, last = nullptr;
  if (!page->rows.empty()) {
    auto at = [&](const std::string& name) {
      return static_cast<size_t>(std::find(page->columns.begin(), page->columns.end(), name)
                                 - page->columns.begin());
    };
    auto sort_at = at("sort_key"), id_at = at("request_id");
    first = json::array({page->rows.front()[sort_at], page->rows.front()[id_at]}).dump();
    last = json::array({page->rows.back()[sort_at], page->rows.back()[id_at]}).dump();
  }
  return json{{"ready", true},
              {"first", first},
              {"last", last},
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
