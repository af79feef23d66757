#include "storage/sql_store.hpp"

#include "base/errc.hpp"
#include "storage/pg_store.hpp"
#include "storage/provenance_log.hpp"
#include "storage/sqlite_store.hpp"

#include <cctype>
#include <cstdio>
#include <cmath>
#include <limits>

namespace comb::storage {

namespace prov_sql {

// Written once for both stores: parameters are compared with text columns or cast
// explicitly (PostgreSQL infers a parameter's type from its use; INTEGER there is 32 bits).

const char* last_writer = R"(
SELECT e.execution_id, f.procedure, f.role, e.ts_ns, e.row_key, e.op
FROM row_events e JOIN func_invocations f ON f.node = e.node AND f.lsn = e.lsn
WHERE e.table_name = ?1 ORDER BY e.lsn DESC, e.seq DESC LIMIT 1)";

const char* most_updated_table = R"(
SELECT table_name, COUNT(*) AS changes FROM row_events
WHERE ts_ns BETWEEN CAST(?1 AS BIGINT) AND CAST(?2 AS BIGINT)
GROUP BY table_name ORDER BY changes DESC, table_name LIMIT 1)";

const char* rows_of_user = R"(
SELECT 'write' AS access, table_name, row_key, lsn FROM row_events
WHERE role = ?1 AND ts_ns BETWEEN CAST(?2 AS BIGINT) AND CAST(?3 AS BIGINT)
UNION ALL
SELECT 'read' AS access, table_name, row_key, lsn FROM row_reads
WHERE role = ?1 AND ts_ns BETWEEN CAST(?2 AS BIGINT) AND CAST(?3 AS BIGINT)
ORDER BY lsn, access, table_name, row_key)";

const char* readers_of_row = R"(
SELECT DISTINCT role FROM row_reads WHERE table_name = ?1 AND row_key = ?2 ORDER BY role)";

const char* downstream = R"(
WITH RECURSIVE down(table_name, row_key, depth) AS (
  SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), 0
  UNION
  SELECT w.table_name, w.row_key, d.depth + 1 FROM down d
  JOIN row_reads r ON r.table_name = d.table_name AND r.row_key = d.row_key
  JOIN row_events w ON w.execution_id = r.execution_id
  WHERE d.depth < 16)
SELECT table_name, row_key, MIN(depth) AS hops FROM down WHERE depth > 0
  AND NOT (table_name = ?1 AND row_key = ?2)
GROUP BY table_name, row_key ORDER BY hops, table_name, row_key)";

const char* upstream = R"(
WITH RECURSIVE up(table_name, row_key, depth) AS (
  SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), 0
  UNION
  SELECT r.table_name, r.row_key, u.depth + 1 FROM up u
  JOIN row_events w ON w.table_name = u.table_name AND w.row_key = u.row_key
  JOIN row_reads r ON r.execution_id = w.execution_id
  WHERE u.depth < 16)
SELECT table_name, row_key, MIN(depth) AS hops FROM up WHERE depth > 0
  AND NOT (table_name = ?1 AND row_key = ?2)
GROUP BY table_name, row_key ORDER BY hops, table_name, row_key)";

const char* table_at = R"(
SELECT row_key, value FROM (
  SELECT row_key, op, value,
         ROW_NUMBER() OVER (PARTITION BY row_key ORDER BY lsn DESC, seq DESC) AS newest
  FROM row_events WHERE table_name = ?1 AND ts_ns <= CAST(?2 AS BIGINT)) AS latest
WHERE newest = 1 AND op <> 'delete' ORDER BY row_key)";

} // namespace prov_sql

namespace {

// One dialect for both stores: SQLite reads it as is; PostgreSQL maps INTEGER and REAL to
// 64-bit types.
constexpr const char* schema = R"(
CREATE TABLE IF NOT EXISTS func_invocations(
  lsn INTEGER, txn_id INTEGER, execution_id INTEGER, parent_id INTEGER,
  procedure TEXT, role TEXT, status TEXT, read_only INTEGER, start_ns INTEGER, end_ns INTEGER,
  partition INTEGER, args TEXT, result TEXT, node TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(node, lsn));
CREATE TABLE IF NOT EXISTS messages(
  lsn INTEGER, seq INTEGER, ts_ns INTEGER, kind TEXT, sender TEXT, receiver TEXT,
  execution_id INTEGER, parent_id INTEGER, procedure TEXT, role TEXT, status TEXT, payload TEXT,
  node TEXT NOT NULL DEFAULT '', PRIMARY KEY(node, lsn, seq));
CREATE TABLE IF NOT EXISTS row_events(
  lsn INTEGER, seq INTEGER, table_name TEXT, row_key TEXT, op TEXT, execution_id INTEGER,
  role TEXT, ts_ns INTEGER, value TEXT, node TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(node, lsn, seq));
CREATE TABLE IF NOT EXISTS row_reads(
  lsn INTEGER, seq INTEGER, table_name TEXT, row_key TEXT, execution_id INTEGER, role TEXT,
  ts_ns INTEGER, node TEXT NOT NULL DEFAULT '', PRIMARY KEY(node, lsn, seq));
CREATE INDEX IF NOT EXISTS row_events_row ON row_events(table_name, row_key);
CREATE INDEX IF NOT EXISTS row_events_exec ON row_events(execution_id);
CREATE INDEX IF NOT EXISTS row_reads_row ON row_reads(table_name, row_key);
CREATE INDEX IF NOT EXISTS row_reads_exec ON row_reads(execution_id);
CREATE TABLE IF NOT EXISTS spool_state(id INTEGER PRIMARY KEY CHECK (id = 1), last_lsn INTEGER);
INSERT INTO spool_state VALUES (1, 0) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS spool_nodes(node TEXT PRIMARY KEY, last_lsn INTEGER);
CREATE TABLE IF NOT EXISTS store_format(id INTEGER PRIMARY KEY CHECK (id = 1),
  keyed_by_node INTEGER);
CREATE TABLE IF NOT EXISTS sql_tables(sql_table TEXT PRIMARY KEY, comb_table TEXT, kind TEXT);
CREATE TABLE IF NOT EXISTS sql_columns(
  sql_table TEXT, field TEXT, column_name TEXT, type TEXT, PRIMARY KEY(sql_table, field));
)";

const std::set<std::string>& fixed_tables() {
  static const std::set<std::string> names{"func_invocations", "messages",    "row_events",
                                           "row_reads",        "spool_state", "spool_nodes",
                                           "store_format",     "sql_tables",  "sql_columns"};
  return names;
}

// The columns every events / current-state table has (an events table an older Comb spooled
// has these, without `node`).
const std::vector<std::string>& fixed_columns(bool state) {
  static const std::vector<std::string> events{"lsn",          "seq",  "op",   "row_key",
                                               "execution_id", "role", "ts_ns"};
  static const std::vector<std::string> current{"row_key", "lsn", "write_execution_id"};
  return state ? current : events;
}

// The column naming the node whose log a row came from (events), or that wrote it last
// (current state): added to a table an older Comb made.
const char* node_column(bool state) {
  return state ? "write_node" : "node";
}

std::string quote(const std::string& ident) {
  std::string q = "\"";
  for (char c : ident) {
    if (c == '"')
      q += '"';
    q += c;
  }
  return q + "\"";
}

// PostgreSQL cuts identifiers at 63 bytes; a longer name keeps its start and a hash of the
// whole, so that two long names stay apart in both stores.
std::string fit(const std::string& name) {
  constexpr size_t max = 63;
  if (name.size() <= max)
    return name;
  uint32_t h = 2166136261u;
  for (unsigned char c : name)
    h = (h ^ c) * 16777619u;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", h);
  return name.substr(0, max - 9) + "_" + hex;
}

// Lower case letters, digits and '_': the same in both stores (SQLite folds case in names,
// PostgreSQL keeps it in quoted ones) and usable without quotes.
std::string sql_name(const std::string& s) {
  std::string out;
  for (unsigned char c : s)
    out += std::isalnum(c) && c < 0x80 ? static_cast<char>(std::tolower(c)) : '_';
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0])))
    out = "f" + out;
  return out;
}

std::string with_suffix(const std::string& base, int n) {
  if (n == 1)
    return fit(base);
  auto suffix = "_" + std::to_string(n);
  return fit(base).size() + suffix.size() <= 63 ? fit(base) + suffix
                                                : fit(base).substr(0, 63 - suffix.size()) + suffix;
}

// Text as both stores take it: valid UTF-8 without NUL (PostgreSQL refuses anything else);
// other bytes become U+FFFD. The log keeps the original bytes.
std::string clean_text(const std::string& s) {
  auto valid_at = [&](size_t i, size_t& len) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == 0)
      return false;
    if (c < 0x80) {
      len = 1;
      return true;
    }
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size())
      return false;
    for (size_t k = 1; k < len; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    return cp >= least[len] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
  };
  size_t len = 0;
  size_t i = 0;
  while (i < s.size() && valid_at(i, len))
    i += len;
  if (i == s.size())
    return s;
  std::string out = s.substr(0, i);
  while (i < s.size()) {
    if (valid_at(i, len)) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out;
}

nlohmann::json txt(const std::string& s) {
  return clean_text(s);
}

nlohmann::json i64(uint64_t v) {
  return static_cast<int64_t>(v);
}

std::string dump(const nlohmann::json& j) {
  return clean_text(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// The column type a JSON value asks for; "" for null (no type yet).
std::string type_of(const nlohmann::json& v) {
  if (v.is_null())
    return "";
  if (v.is_boolean() || v.is_number_integer()) {
    if (v.is_number_unsigned()
        && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return "REAL";
    return "INTEGER";
  }
  if (v.is_number_float())
    return "REAL";
  return "TEXT";
}

int rank(const std::string& type) {
  return type == "INTEGER" ? 0 : type == "REAL" ? 1 : 2;
}

// A JSON field's value as a cell of a column of `type` (which type_of(v) does not outrank).
nlohmann::json cell(const nlohmann::json& v, const std::string& type) {
  if (v.is_null())
    return nullptr;
  if (v.is_number_float() && !std::isfinite(v.get<double>()))
    return nullptr;
  if (v.is_string())
    return clean_text(v.get_ref<const std::string&>());
  if (type == "TEXT")
    return v.is_boolean() ? std::string{v.get<bool>() ? "1" : "0"} : dump(v);
  if (v.is_boolean())
    return v.get<bool>() ? 1 : 0;
  if (v.is_number_unsigned()
      && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return static_cast<double>(v.get<uint64_t>());
  return v;
}

// Fields that page or filter by time get an index in the current-state tables (the console
// pages httplog_request by ts_ns).
bool time_like(const std::string& column) {
  auto ends = [&](const std::string& s) {
    return column.size() >= s.size() && column.compare(column.size() - s.size(), s.size(), s) == 0;
  };
  return column == "ts" || column == "ts_ns" || column == "timestamp" || column == "time_ns"
         || ends("_ts") || ends("_ts_ns") || ends("_at");
}

const char* op_name(row_change::op k) {
  switch (k) {
  case row_change::op::insert:
    return "insert";
  case row_change::op::update:
    return "update";
  case row_change::op::del:
    return "delete";
  }
  return "?";
}

} // namespace

bool sql_store::is_postgresql(const std::string& target) {
  return target.rfind("postgresql://", 0) == 0 || target.rfind("postgres://", 0) == 0;
}

std::string sql_store::display(const std::string& target) {
  if (!is_postgresql(target))
    return target;
  auto scheme = target.find("://") + 3;
  auto at = target.find('@', scheme);
  auto colon = target.find(':', scheme);
  if (at == std::string::npos || colon == std::string::npos || colon > at)
    return target;
  return target.substr(0, colon + 1) + "***" + target.substr(at);
}

caf::expected<std::unique_ptr<sql_store>> sql_store::open(const std::string& target,
                                                          bool read_only) {
  if (is_postgresql(target))
    return open_pg_store(target, read_only);
  return open_sqlite_store(target, read_only);
}

sql_store::~sql_store() = default;

std::string sql_store::events_table(const std::string& table) {
  return fit(sql_name(table) + "_events");
}

std::string sql_store::state_table(const std::string& table) {
  return fit(sql_name(table));
}

caf::error sql_store::create_schema() {
  // A store an older Comb made keys its tables by lsn alone: it gets the node columns (its
  // rows are the unnamed node's, '') and stays a store of one node (store_format).
  auto had = columns_of("func_invocations");
  if (!had)
    return std::move(had.error());
  bool legacy = !had->empty() && !had->count("node");
  if (auto err = exec(schema))
    return err;
  if (legacy) {
    for (auto* t : {"func_invocations", "messages", "row_events", "row_reads"})
      if (auto err = add_node_column(t, /*state=*/false))
        return err;
    auto ts = query("SELECT sql_table, kind FROM sql_tables");
    if (!ts)
      return std::move(ts.error());
    for (auto& r : *ts)
      if (auto err = add_node_column(r["sql_table"].get<std::string>(), r["kind"] == "state"))
        return err;
  }
  return write("INSERT INTO store_format VALUES (1, ?1) ON CONFLICT DO NOTHING", {legacy ? 0 : 1});
}

caf::error sql_store::add_node_column(const std::string& table, bool state) {
  auto cols = columns_of(table);
  if (!cols)
    return std::move(cols.error());
  if (cols->empty() || cols->count(node_column(state)))
    return {};
  return exec("ALTER TABLE " + quote(table) + " ADD COLUMN " + node_column(state)
              + (state ? " TEXT" : " TEXT NOT NULL DEFAULT ''"));
}

uint64_t sql_store::last_lsn() {
  auto r = query("SELECT last_lsn FROM spool_state WHERE id = 1");
  if (!r || r->empty() || !(*r)[0]["last_lsn"].is_number())
    return 0;
  return (*r)[0]["last_lsn"].get<uint64_t>();
}

uint64_t sql_store::last_lsn(const std::string& node) {
  auto r = query("SELECT last_lsn FROM spool_nodes WHERE node = ?1", {node});
  if (r && !r->empty() && (*r)[0]["last_lsn"].is_number())
    return (*r)[0]["last_lsn"].get<uint64_t>();
  // A store spooled before spool_nodes: spool_state holds its one node's (0 in a new store).
  if (auto n = query("SELECT COUNT(*) AS n FROM spool_nodes");
      n && !n->empty() && (*n)[0]["n"] == 0)
    return last_lsn();
  return 0;
}

caf::expected<std::vector<std::string>> sql_store::nodes() {
  auto r = query("SELECT node FROM spool_nodes ORDER BY node");
  if (!r)
    return std::move(r.error());
  std::vector<std::string> out;
  for (auto& row : *r)
    out.push_back(row["node"].get<std::string>());
  return out;
}

caf::expected<std::string> sql_store::events_table_of(const std::string& table) {
  if (auto err = load_registry())
    return err;
  auto i = events_of_.find(table);
  return i == events_of_.end() ? std::string{} : i->second;
}

caf::expected<std::string> sql_store::state_table_of(const std::string& table) {
  if (auto err = load_registry())
    return err;
  auto i = state_of_.find(table);
  return i == state_of_.end() ? std::string{} : i->second;
}

caf::error sql_store::load_registry() {
  if (loaded_)
    return {};
  events_of_.clear();
  state_of_.clear();
  tables_.clear();
  names_ = fixed_tables();
  auto ts = query("SELECT sql_table, comb_table, kind FROM sql_tables");
  if (!ts)
    return std::move(ts.error());
  for (auto& r : *ts) {
    auto name = r["sql_table"].get<std::string>();
    bool state = r["kind"] == "state";
    (state ? state_of_ : events_of_)[r["comb_table"].get<std::string>()] = name;
    auto& t = tables_[name];
    t.name = name;
    t.state = state;
    t.taken.insert(fixed_columns(state).begin(), fixed_columns(state).end());
    t.taken.insert(node_column(state));
    names_.insert(name);
  }
  auto cs = query("SELECT sql_table, field, column_name, type FROM sql_columns "
                  "ORDER BY sql_table, column_name");
  if (!cs)
    return std::move(cs.error());
  for (auto& r : *cs) {
    auto i = tables_.find(r["sql_table"].get<std::string>());
    if (i == tables_.end())
      continue;
    auto& t = i->second;
    auto field = r["field"].get<std::string>();
    column c{r["column_name"].get<std::string>(), r["type"].get<std::string>(), ""};
    if (t.state && time_like(c.name))
      c.index = fit(t.name + "_" + c.name + "_idx");
    t.taken.insert(c.name);
    t.fields[field] = c;
    t.order.push_back(field);
  }
  loaded_ = true;
  return {};
}

caf::expected<sql_store::table*> sql_store::table_for(const std::string& comb_table, bool state) {
  auto& known = state ? state_of_ : events_of_;
  if (auto i = known.find(comb_table); i != known.end())
    return &tables_[i->second];
  auto base = state ? sql_name(comb_table) : sql_name(comb_table) + "_events";
  auto& fixed = fixed_columns(state);
  for (int n = 1;; ++n) {
    auto name = with_suffix(base, n);
    if (names_.count(name))
      continue;
    auto cols = columns_of(name);
    if (!cols)
      return std::move(cols.error());
    if (!cols->empty()) {
      // A table the registry does not know: an events table an older Comb spooled (before
      // the registry) is taken over; anything else keeps its name.
      bool ours = !state;
      for (auto& f : fixed)
        ours = ours && cols->count(f);
      if (!ours) {
        names_.insert(name);
        continue;
      }
    }
    std::string ddl = "CREATE TABLE IF NOT EXISTS " + quote(name);
    ddl += state ? "(row_key TEXT PRIMARY KEY, lsn INTEGER, write_execution_id INTEGER, "
                   "write_node TEXT)"
                 : "(lsn INTEGER, seq INTEGER, op TEXT, row_key TEXT, execution_id INTEGER, "
                   "role TEXT, ts_ns INTEGER, node TEXT NOT NULL DEFAULT '', "
                   "PRIMARY KEY(node, lsn, seq))";
    if (auto err = exec(ddl))
      return err;
    if (!cols->empty() && !cols->count(node_column(state)))
      if (auto err = exec("ALTER TABLE " + quote(name) + " ADD COLUMN " + node_column(state)
                          + " TEXT NOT NULL DEFAULT ''"))
        return err;
    if (auto err = write("INSERT INTO sql_tables VALUES (?1, ?2, ?3)",
                         {name, txt(comb_table), state ? "state" : "events"}))
      return err;
    auto& t = tables_[name];
    t.name = name;
    t.state = state;
    t.taken.insert(fixed.begin(), fixed.end());
    t.taken.insert(node_column(state));
    for (auto& c : *cols)
      if (!t.taken.count(c))
        t.found.insert(c);
    names_.insert(name);
    known[comb_table] = name;
    return &t;
  }
}

caf::expected<std::vector<const sql_store::column*>> sql_store::columns_for(
  table& t, const nlohmann::json& row) {
  std::vector<const column*> out;
  if (!row.is_object())
    return out;
  for (auto& [field, v] : row.items()) {
    auto type = type_of(v);
    auto i = t.fields.find(field);
    if (i == t.fields.end()) {
      if (type.empty()) {
        out.push_back(nullptr); // no type yet: the column comes with the first value
        continue;
      }
      auto base = sql_name(field);
      std::string name;
      for (int n = 1; name.empty() || t.taken.count(name); ++n)
        name = with_suffix(base, n);
      column c{name, type, ""};
      if (t.state && time_like(name))
        c.index = fit(t.name + "_" + name + "_idx");
      if (!t.found.count(name))
        if (auto err = exec("ALTER TABLE " + quote(t.name) + " ADD COLUMN " + quote(name) + " "
                            + type))
          return err;
      if (!c.index.empty())
        if (auto err = exec("CREATE INDEX IF NOT EXISTS " + quote(c.index) + " ON " + quote(t.name)
                            + "(" + quote(name) + ")"))
          return err;
      if (auto err = write("INSERT INTO sql_columns VALUES (?1, ?2, ?3, ?4)",
                           {t.name, txt(field), name, type}))
        return err;
      t.taken.insert(name);
      t.order.push_back(field);
      t.into.clear();
      i = t.fields.emplace(field, std::move(c)).first;
    } else if (!type.empty() && rank(type) > rank(i->second.type)) {
      // A value the column's type cannot hold: widen it (INTEGER -> REAL -> TEXT).
      auto& c = i->second;
      if (auto err = retype_column(t.name, c.name, type, c.index))
        return err;
      if (auto err = write("UPDATE sql_columns SET type = ?1 WHERE sql_table = ?2 AND field = ?3",
                           {type, t.name, txt(field)}))
        return err;
      c.type = type;
    }
    out.push_back(&i->second);
  }
  return out;
}

caf::error sql_store::spool_change(const log_record& r, size_t seq, const row_change& c) {
  auto lsn = i64(r.lsn);
  nlohmann::json row = nullptr; // the row as its fields (events), null for a delete
  bool object = false;          // a JSON object row: it has a current-state row
  if (c.kind != row_change::op::del) {
    auto decoded = c.is_row ? nlohmann::json::from_msgpack(c.value, true, false)
                            : nlohmann::json(nlohmann::json::value_t::discarded);
    object = decoded.is_object();
    row = decoded.is_discarded() ? nlohmann::json{{"bytes", c.value.size()}} : std::move(decoded);
  }
  // Private fields and keys as the store shows them (spool_privacy).
  auto key = shown_key(c.table, c.key);
  if (row.is_object())
    if (auto f = privacy_.fields.find(c.table); f != privacy_.fields.end())
      for (auto& name : f->second)
        if (auto v = row.find(name); v != row.end() && !v->is_null())
          *v = privacy_.mask(v->is_string() ? v->get_ref<const std::string&>() : v->dump());
  if (auto err = append_row("row_events",
                            {lsn, seq, txt(c.table), txt(key), op_name(c.kind),
                             i64(r.execution_id), txt(r.role), r.timestamp_ns,
                             row.is_null() ? nlohmann::json(nullptr) : nlohmann::json(dump(row)),
                             txt(node_)}))
    return err;
  if (c.table.rfind("__", 0) == 0)
    return {}; // Comb's own bookkeeping
  // The events table: one row per change, the row's fields as columns.
  auto ev = table_for(c.table, /*state=*/false);
  if (!ev)
    return std::move(ev.error());
  auto cols = columns_for(**ev, row);
  if (!cols)
    return std::move(cols.error());
  std::string names = "lsn, seq, op, row_key, execution_id, role, ts_ns, node";
  std::vector<nlohmann::json> params{
    lsn,       seq, op_name(c.kind), txt(key), i64(r.execution_id), txt(r.role), r.timestamp_ns,
    txt(node_)};
  if (row.is_object()) {
    size_t k = 0;
    for (auto& [field, v] : row.items()) {
      auto* col = (*cols)[k++];
      if (!col)
        continue;
      names += ", " + quote(col->name);
      params.push_back(cell(v, col->type));
    }
  }
  if (auto err = append_row(quote((*ev)->name) + "(" + names + ")", params))
    return err;
  // The current-state table: the row as it is now.
  if (c.kind == row_change::op::del) {
    auto i = state_of_.find(c.table);
    if (i == state_of_.end())
      return {};
    return write("DELETE FROM " + quote(i->second) + " WHERE row_key = ?1", {txt(key)});
  }
  if (!object)
    return {};
  auto st = table_for(c.table, /*state=*/true);
  if (!st)
    return std::move(st.error());
  auto& t = **st;
  if (auto e = columns_for(t, row); !e)
    return std::move(e.error());
  if (t.into.empty()) {
    std::string cols_sql = "row_key, lsn, write_execution_id, write_node",
                set = "lsn = excluded.lsn, write_execution_id = excluded.write_execution_id, "
                      "write_node = excluded.write_node";
    for (auto& field : t.order) {
      auto& name = t.fields[field].name;
      cols_sql += ", " + quote(name);
      set += ", " + quote(name) + " = excluded." + quote(name);
    }
    t.into = quote(t.name) + "(" + cols_sql + ")";
    t.set = std::move(set);
  }
  // Every column: a field the row no longer has is NULL now.
  std::vector<nlohmann::json> vals{txt(key), lsn, i64(r.execution_id), txt(node_)};
  for (auto& field : t.order) {
    auto& col = t.fields[field];
    auto v = row.find(field);
    vals.push_back(v == row.end() ? nlohmann::json(nullptr) : cell(*v, col.type));
  }
  return upsert_row(t.into, t.set, vals);
}

caf::error sql_store::spool_record(const log_record& r) {
  auto lsn = i64(r.lsn);
  auto message = [&](int seq, int64_t ts, const std::string& kind, const std::string& from,
                     const std::string& to, const std::string& payload) {
    return append_row("messages", {lsn, seq, ts, txt(kind), txt(from), txt(to), i64(r.execution_id),
                                   i64(r.parent_id), txt(r.procedure), txt(r.role), txt(r.status),
                                   txt(payload), txt(node_)});
  };
  if (r.kind != log_record::kind_t::invocation) {
    auto sp = r.payload.find(' ');
    return message(0, r.timestamp_ns, r.payload.substr(0, sp), r.sender, r.receiver,
                   sp == std::string::npos ? "" : r.payload.substr(sp + 1));
  }
  // An invocation record stands for the call and its reply (private fields masked).
  auto names_of = [](const auto& map, const std::string& proc) -> const spool_privacy::names* {
    auto i = map.find(proc);
    return i == map.end() ? nullptr : &i->second;
  };
  auto args = masked_fields(r.payload, names_of(privacy_.args, r.procedure));
  auto result = masked_fields(r.result, names_of(privacy_.results, r.procedure));
  if (auto err = message(0, r.start_ns, "invoke", r.sender, r.receiver, args))
    return err;
  if (auto err = message(1, r.end_ns, "reply", r.receiver, r.sender, result))
    return err;
  if (auto err = append_row("func_invocations",
                            {lsn, i64(r.execution_id), i64(r.execution_id), i64(r.parent_id),
                             txt(r.procedure), txt(r.role), txt(r.status), r.read_only ? 1 : 0,
                             r.start_ns, r.end_ns, r.partition, txt(args), txt(result),
                             txt(node_)}))
    return err;
  for (size_t i = 0; i < r.changes.size(); ++i)
    if (auto err = spool_change(r, i, r.changes[i]))
      return err;
  for (size_t i = 0; i < r.reads.size(); ++i)
    if (auto err = append_row("row_reads",
                              {lsn, i, txt(r.reads[i].table),
                               txt(shown_key(r.reads[i].table, r.reads[i].key)),
                               i64(r.execution_id), txt(r.role), r.timestamp_ns, txt(node_)}))
      return err;
  return {};
}

caf::error sql_store::set_privacy(spool_privacy privacy) {
  if (!privacy.empty() && !privacy.mask)
    return make_error(errc::invalid_argument,
                      "SQL store: a privacy policy that marks values private needs a mask");
  privacy_ = std::move(privacy);
  return {};
}

std::string sql_store::masked_fields(const std::string& json_text,
                                     const spool_privacy::names* names) const {
  if (!names || names->empty() || json_text.empty())
    return json_text;
  auto j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object())
    return json_text; // an error's text, or no fields to mask
  bool changed = false;
  for (auto& name : *names)
    if (auto v = j.find(name); v != j.end() && !v->is_null()) {
      *v = privacy_.mask(v->is_string() ? v->get_ref<const std::string&>() : v->dump());
      changed = true;
    }
  return changed ? dump(j) : json_text;
}

std::string sql_store::shown_key(const std::string& table, const std::string& key) const {
  return privacy_.keys.count(table) ? privacy_.mask(key) : key;
}

caf::expected<uint64_t> sql_store::spool(const std::string& log_dir, uint64_t max_records,
                                         const std::string& node) {
  // The log is opened every pass (its CLUSTER file read again: a log made anew under the same
  // folder is read from its start), and the last pass's reader kept while it is the same log.
  auto opened = log_reader::open(log_dir);
  if (!opened)
    return std::move(opened.error());
  if (!reader_ || reader_->dir() != log_dir || reader_->cluster_id() != opened->cluster_id())
    reader_ = std::make_shared<log_reader>(std::move(*opened));
  auto* reader = reader_.get();
  if (auto err = begin())
    return err;
  // A failed pass leaves nothing behind: the transaction rolls back, and what this object
  // learnt of tables and columns is read again from the registry.
  auto fail = [&](const caf::error& cause) {
    loaded_ = false;
    return rollback(cause);
  };
  // The registry is read again each pass: another spooler of the same database may have
  // added tables and columns since.
  loaded_ = false;
  if (auto err = load_registry())
    return fail(err);
  // A store whose tables are keyed by lsn alone holds one node: a second one's lsn 1 would
  // be taken for the first one's and dropped.
  auto format = query("SELECT keyed_by_node FROM store_format WHERE id = 1");
  if (!format)
    return fail(format.error());
  if (!format->empty() && (*format)[0]["keyed_by_node"] == 0) {
    auto held = query("SELECT node FROM spool_nodes WHERE node <> ?1", {node});
    if (!held)
      return fail(held.error());
    if (!held->empty())
      return fail(make_error(
        errc::format_mismatch,
        "this SQL store was made by an older Comb (tables keyed by lsn alone) and holds node '"
          + (*held)[0]["node"].get<std::string>() + "': spool node '" + node
          + "' into a new store, or spool every node again into a new one"));
  }
  node_ = node;
  auto from = last_lsn(node); // inside the transaction: no other spooler moves it now
  uint64_t n = 0, last = from;
  caf::error failure;
  auto err = reader->for_each(from + 1, [&](log_record&& r) {
    if (max_records > 0 && n >= max_records)
      return false;
    if (auto e = spool_record(r)) {
      failure = std::move(e);
      return false;
    }
    ++n;
    last = r.lsn;
    return true;
  });
  if (!err)
    err = std::move(failure);
  if (!err && n > 0)
    err = write("INSERT INTO spool_nodes VALUES (?1, ?2) ON CONFLICT(node) DO UPDATE SET "
                "last_lsn = excluded.last_lsn",
                {txt(node), i64(last)});
  // spool_state keeps the highest lsn spooled of any node (of the only one, on one node).
  if (!err && n > 0)
    err = write("UPDATE spool_state SET last_lsn = ?1 WHERE id = 1 AND last_lsn < ?1", {i64(last)});
  if (err)
    return fail(err);
  if (auto e = commit()) {
    loaded_ = false;
    return e;
  }
  return n;
}

} // namespace comb::storage
