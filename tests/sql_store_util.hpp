// Helpers for the SQL store's tests: every row of every table a store holds (the fixed
// tables, the registry and each registered table) in a fixed order, and the answers to a list
// of questions, as JSON, by the same SQL in SQLite and PostgreSQL, so two stores compare with
// ==. Header only.
#pragma once

#include "storage/sql_store.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <tuple>

namespace comb::test {

/// A named question: SQL and its parameters.
using sql_question = std::tuple<std::string, std::string, std::vector<std::string>>;

/// Every row of the store's tables, and the answers to `questions`, by name.
inline nlohmann::json store_contents(storage::sql_store& s,
                                     const std::vector<sql_question>& questions) {
  nlohmann::json out = nlohmann::json::object();
  auto q = [&](const std::string& name, const std::string& sql,
               const std::vector<std::string>& params = {}) {
    auto rows = s.query(sql, params);
    REQUIRE_MESSAGE(rows, name << ": " << why(rows));
    out[name] = *rows;
  };
  q("func_invocations", "SELECT * FROM func_invocations ORDER BY lsn");
  q("messages", "SELECT * FROM messages ORDER BY lsn, seq");
  q("row_events", "SELECT * FROM row_events ORDER BY lsn, seq");
  q("row_reads", "SELECT * FROM row_reads ORDER BY lsn, seq");
  q("spool_state", "SELECT * FROM spool_state");
  q("sql_tables", "SELECT * FROM sql_tables ORDER BY sql_table");
  q("sql_columns", "SELECT * FROM sql_columns ORDER BY sql_table, field");
  for (auto& t : out["sql_tables"]) {
    auto name = t["sql_table"].get<std::string>();
    q(name,
      "SELECT * FROM \"" + name + "\" ORDER BY " + (t["kind"] == "state" ? "row_key" : "lsn, seq"));
  }
  for (auto& [name, sql, params] : questions)
    q(name, sql, params);
  return out;
}

/// Checks that two stores' contents are equal, naming the first table that differs.
inline void check_same(const nlohmann::json& a, const nlohmann::json& b, const char* a_name,
                       const char* b_name) {
  for (auto& [name, rows] : a.items())
    CHECK_MESSAGE(rows == b[name], name << "\n"
                                        << a_name << ": " << rows.dump() << "\n"
                                        << b_name << ": " << b[name].dump());
  CHECK(a.size() == b.size());
}

} // namespace comb::test
