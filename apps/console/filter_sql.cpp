// The Overview's filter tree to a parameterised WHERE fragment.
#include "apps/console/filter_sql.hpp"

#include "base/errc.hpp"

#include <charconv>
#include <cmath>

namespace comb::apps::console {

namespace {

using nlohmann::json;

caf::error bad(const std::string& where, const std::string& what) {
  return make_error(errc::invalid_argument, "filter " + where + ": " + what);
}

// A value the browser sent as text or number, as a number when it is one.
std::optional<json> as_number(const json& v) {
  if (v.is_number())
    return v;
  if (!v.is_string())
    return std::nullopt;
  auto s = v.get<std::string>();
  if (s.empty())
    return std::nullopt;
  int64_t i = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (ec == std::errc{} && p == s.data() + s.size())
    return json(i);
  double d = 0;
  auto [p2, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec2 == std::errc{} && p2 == s.data() + s.size() && std::isfinite(d))
    return json(d);
  return std::nullopt;
}

struct builder {
  const console_schema& schema;
  const store_columns& cols;
  sql_fragment out;
  int conditions = 0;

  caf::error node(const json& n, const std::string& where, int depth) {
    if (depth > max_filter_depth)
      return bad(where, "nested deeper than " + std::to_string(max_filter_depth) + " groups");
    if (!n.is_object())
      return bad(where, "must be an object, got " + std::string(n.type_name()));
    if (n.contains("items"))
      return group(n, where, depth);
    return condition(n, where);
  }

  caf::error group(const json& n, const std::string& where, int depth) {
    std::string op = "and";
    if (n.contains("op")) {
      if (!n["op"].is_string())
        return bad(where, "'op' must be \"and\" or \"or\"");
      op = n["op"].get<std::string>();
    }
    if (op != "and" && op != "or")
      return bad(where, "'op' must be \"and\" or \"or\", got '" + op + "'");
    auto& items = n["items"];
    if (!items.is_array())
      return bad(where, "'items' must be an array");
    std::vector<std::string> parts;
    for (size_t i = 0; i < items.size(); ++i) {
      auto saved = std::move(out.sql);
      out.sql.clear();
      if (auto err = node(items[i], where + ".items[" + std::to_string(i) + "]", depth + 1))
        return err;
      if (!out.sql.empty())
        parts.push_back(std::move(out.sql));
      out.sql = std::move(saved);
    }
    if (parts.empty())
      return {};
    if (parts.size() == 1) {
      out.sql += parts[0];
      return {};
    }
    std::string joined = "(";
    for (size_t i = 0; i < parts.size(); ++i)
      joined += (i ? (op == "and" ? " AND " : " OR ") : "") + parts[i];
    out.sql += joined + ")";
    return {};
  }

  caf::error condition(const json& n, const std::string& where) {
    if (++conditions > max_filter_conditions)
      return bad(where, "more than " + std::to_string(max_filter_conditions) + " conditions");
    if (!n.contains("field") || !n["field"].is_string())
      return bad(where, "missing 'field'");
    auto name = n["field"].get<std::string>();
    auto f = schema.field(name);
    if (!f)
      return bad(where, "unknown field '" + name + "' (not on the console's list of fields)");
    if (!n.contains("cmp") || !n["cmp"].is_string())
      return bad(where, "missing 'cmp' for field '" + name + "'");
    auto cmp = n["cmp"].get<std::string>();
    auto col = schema.expr(*f, cols);
    if (cmp == "is_empty") {
      out.sql += "(" + col + " IS NULL OR " + col + " = '')";
      return {};
    }
    if (cmp == "is_not_empty") {
      out.sql += "(" + col + " IS NOT NULL AND " + col + " <> '')";
      return {};
    }
    if (!n.contains("value") || !(n["value"].is_string() || n["value"].is_number()))
      return bad(where, "'" + cmp + "' on '" + name + "' needs a text or number 'value'");
    auto& v = n["value"];
    if (v.is_string() && v.get_ref<const std::string&>().size() > max_filter_value)
      return bad(where, "value longer than " + std::to_string(max_filter_value) + " bytes");
    auto text = v.is_string() ? v.get<std::string>() : v.dump();
    static const char* ops[][2] = {{"=", "="},   {"!=", "<>"}, {"<", "<"},
                                   {"<=", "<="}, {">", ">"},   {">=", ">="}};
    for (auto& o : ops) {
      if (cmp != o[0])
        continue;
      if (f->numeric) {
        auto num = as_number(v);
        if (!num)
          return bad(where, "field '" + name + "' takes a number, got '" + text + "'");
        out.params.push_back(*num);
      } else {
        out.params.push_back(text);
      }
      out.sql += col + " " + o[1] + " ?";
      return {};
    }
    std::string pattern;
    bool negate = false;
    if (cmp == "contains" || cmp == "not_contains") {
      pattern = "%" + like_escape(text) + "%";
      negate = cmp == "not_contains";
    } else if (cmp == "starts_with") {
      pattern = like_escape(text) + "%";
    } else if (cmp == "ends_with") {
      pattern = "%" + like_escape(text);
    } else {
      return bad(where, "unknown comparison '" + cmp + "' for field '" + name + "'");
    }
    out.params.push_back(pattern);
    if (negate)
      out.sql += "(" + col + " IS NULL OR " + col + " NOT LIKE ? ESCAPE '\\')";
    else
      out.sql += col + " LIKE ? ESCAPE '\\'";
    return {};
  }
};

} // namespace

std::string like_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

caf::expected<sql_fragment> build_filter(const json& filter, const console_schema& schema,
                                         const store_columns& cols) {
  builder b{schema, cols, {}};
  if (filter.is_null())
    return b.out;
  if (auto err = b.node(filter, "root", 0))
    return err;
  return b.out;
}

} // namespace comb::apps::console
