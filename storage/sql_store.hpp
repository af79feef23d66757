// comb::storage::sql_store: the SQL analytics store the provenance log is spooled into, an
// interface with two implementations of the same schema: SQLite (a file; the default,
// storage/sqlite_store.hpp) and PostgreSQL (a postgresql:// URL, through libpq,
// storage/pg_store.hpp). Fixed tables: func_invocations (one row per invocation: execution
// id, start and end, procedure, role, status, read-only flag, arguments, result), messages,
// row_events (every row change), row_reads (every row read, when the node records reads),
// spool_state (the highest lsn spooled), spool_nodes (each node's last lsn spooled), and the registry sql_tables / sql_columns (which SQL
// table and column each Comb table and JSON field went to). Per Comb table two more: its
// events (`<table>_events`, one row per change, the row's JSON fields as columns) and, for
// tables whose rows are JSON objects, its current rows (`<table>`: primary key row_key, one
// column per field, lsn and write_execution_id of the last write; deletes delete). Columns
// are added as fields appear, typed INTEGER/REAL/TEXT by the first value seen and widened
// (INTEGER -> REAL -> TEXT) when a later value does not fit. One spool pass is one SQL
// transaction that also moves spool_state, so running it again, or after a crash, never
// duplicates or loses rows. One store per thread; not thread-safe.
#pragma once

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace comb::storage {

struct log_record;
class log_reader;
struct row_change;

/// What of the log the store must not show: credentials (password hashes, session keys) in
/// procedure arguments and results, in row fields, and as row keys. The provenance log keeps
/// them (replay needs them); every console user can read the store with raw SQL, so there
/// each such value (a string as it is, anything else as its JSON text) is `mask(value)`, a
/// keyed hash the runtime makes (runtime/provenance/spooler.hpp). Equal values stay equal, so
/// a masked row key is still the key of its current-state row, and a session's calls still
/// join to its row; without the key nobody can test a guessed value against a mask.
/// Top-level fields only (the procedures that hold credentials take flat arguments). Plain
/// value type.
struct spool_privacy {
  using names = std::set<std::string, std::less<>>;
  /// Procedure -> its private arguments (func_invocations.args, the invoke message).
  std::map<std::string, names, std::less<>> args;
  /// Procedure -> the private fields of its result (func_invocations.result, the reply).
  std::map<std::string, names, std::less<>> results;
  /// Comb table -> its private row fields (row_events.value, its events and current rows).
  std::map<std::string, names, std::less<>> fields;
  /// Comb tables whose row keys are private (in every row_key column).
  names keys;
  /// Shows a private value; required when anything above is set.
  std::function<std::string(std::string_view)> mask;

  bool empty() const { return args.empty() && results.empty() && fields.empty() && keys.empty(); }
};

class sql_store {
public:
  /// Opens (creating the schema in) a store: a postgresql:// (or postgres://) URL opens
  /// PostgreSQL, anything else is a SQLite file. read_only opens it for queries only
  /// (SQLite: the file must exist; PostgreSQL: every query runs in a READ ONLY transaction
  /// that is rolled back).
  static caf::expected<std::unique_ptr<sql_store>> open(const std::string& target,
                                                        bool read_only = false);
  /// True when `target` names a PostgreSQL database (postgresql:// or postgres://).
  static bool is_postgresql(const std::string& target);
  /// `target` fit for messages: a URL's password replaced by ***.
  static std::string display(const std::string& target);

  virtual ~sql_store();
  sql_store(const sql_store&) = delete;
  sql_store& operator=(const sql_store&) = delete;

  /// Copies the log records of node `node` after its last spooled lsn (at most
  /// `max_records`, 0: all) into the tables, in one transaction; returns how many. Every
  /// spooled row names the node (column `node`; current-state rows: `write_node`), and rows
  /// are keyed by (node, lsn), so several nodes' logs, each with its own lsns, meet in one
  /// store. A store an older Comb made (keyed by lsn alone) takes one node only and refuses a
  /// second with errc::format_mismatch.
  caf::expected<uint64_t> spool(const std::string& log_dir, uint64_t max_records = 0,
                                const std::string& node = "");

  /// What the next passes show masked (see spool_privacy); none until set. A policy with
  /// private names and no mask is refused (errc::invalid_argument) and the old one kept.
  caf::error set_privacy(spool_privacy privacy);

  /// Runs one SQL statement with text parameters (?1, ?2, ... in both stores); rows as a
  /// JSON array of objects (integers, reals, text, null). Invalid SQL gets
  /// errc::invalid_argument with the database's message.
  virtual caf::expected<nlohmann::json> query(const std::string& sql,
                                              const std::vector<std::string>& params = {}) = 0;

  /// "sqlite" or "postgresql".
  virtual const char* backend() const = 0;

  /// The highest lsn spooled of any node (0 when none): the last lsn of a one-node store.
  uint64_t last_lsn();
  /// The last lsn spooled of node `node` (0 when none).
  uint64_t last_lsn(const std::string& node);
  /// The nodes whose logs were spooled, by name.
  caf::expected<std::vector<std::string>> nodes();

  /// The SQL table that holds the events ("bank.accounts" -> "bank_accounts_events") or the
  /// current rows ("bank.accounts" -> "bank_accounts") of a Comb table; a name that clashes
  /// with a fixed table or another Comb table's gets "_2", "_3", ... (sql_tables says which).
  /// Empty when nothing of the table was spooled yet.
  caf::expected<std::string> events_table_of(const std::string& table);
  caf::expected<std::string> state_table_of(const std::string& table);

  /// The default (unclashed) names of the events and current-state tables of a Comb table.
  static std::string events_table(const std::string& table);
  static std::string state_table(const std::string& table);

protected:
  sql_store() = default;

  /// Creates the fixed tables (when missing) and gives an older store its node columns;
  /// backends call it once connected.
  caf::error create_schema();

  // What a backend provides. DDL and statements are written in one dialect that both
  // understand (types INTEGER, REAL, TEXT; INSERT ... ON CONFLICT; parameters ?1, ?2, ...);
  // a backend maps what it must (PostgreSQL: INTEGER -> BIGINT, REAL -> DOUBLE PRECISION).

  /// Runs a statement without parameters (may be deferred until commit or the next query).
  virtual caf::error exec(const std::string& sql) = 0;
  /// Runs a statement with parameters ?1..?N (null, integer, real or text values; may be
  /// deferred until commit or the next query).
  virtual caf::error write(const std::string& sql, const std::vector<nlohmann::json>& params) = 0;
  /// Inserts a row unless its key is there (ON CONFLICT DO NOTHING); `into` is `"table"` or
  /// `"table"(columns)`. Nothing later in the pass changes such a row, so a backend may send
  /// the rows of one `into` together, after the other statements written before them.
  virtual caf::error append_row(const std::string& into,
                                const std::vector<nlohmann::json>& values) = 0;
  /// Inserts or replaces (ON CONFLICT(row_key) DO UPDATE SET `set`) a current-state row,
  /// whose key is values[0]; in order with the other statements.
  virtual caf::error upsert_row(const std::string& into, const std::string& set,
                                const std::vector<nlohmann::json>& values) = 0;
  /// Starts the spool's transaction, holding off other spoolers of the same store.
  virtual caf::error begin() = 0;
  virtual caf::error commit() = 0;
  /// Rolls back; says so when the transaction stays open.
  virtual caf::error rollback(const caf::error& cause) = 0;
  /// The columns a table has (empty when there is no such table).
  virtual caf::expected<std::set<std::string>> columns_of(const std::string& table) = 0;
  /// Changes a column's type (INTEGER, REAL or TEXT), converting the values it holds;
  /// `index` names the column's index, if it has one.
  virtual caf::error retype_column(const std::string& table, const std::string& column,
                                   const std::string& type, const std::string& index) = 0;

private:
  struct column {
    std::string name;
    std::string type;  // INTEGER, REAL or TEXT
    std::string index; // the column's index, "" when none
  };
  struct table {
    std::string name;
    bool state = false;                   // current rows (else events)
    std::map<std::string, column> fields; // JSON field -> column
    std::vector<std::string> order;       // fields in the order their columns were added
    std::set<std::string> taken;          // column names in use
    std::set<std::string> found;          // columns the table had before the registry knew them
    std::string into, set; // the upsert's target and SET clause (state tables), "" when stale
  };

  caf::error load_registry();
  caf::error add_node_column(const std::string& table, bool state);
  caf::expected<table*> table_for(const std::string& comb_table, bool state);
  caf::expected<std::vector<const column*>> columns_for(table& t, const nlohmann::json& row);
  caf::error spool_record(const log_record& r);
  caf::error spool_change(const log_record& r, size_t seq, const row_change& c);
  /// `json_text` (arguments or a result) with the fields in `names` masked.
  std::string masked_fields(const std::string& json_text, const spool_privacy::names* names) const;
  /// Row key `key` of `table`, masked when the table's keys are private.
  std::string shown_key(const std::string& table, const std::string& key) const;

  spool_privacy privacy_;

  bool loaded_ = false;
  std::string node_;                                        // the node this pass spools
  // The log spool() read last: kept, so that the next pass reads only what is new.
  std::shared_ptr<log_reader> reader_;
  std::map<std::string, std::string> events_of_, state_of_; // Comb table -> SQL table
  std::map<std::string, table> tables_;                     // SQL table -> what is known of it
  std::set<std::string> names_;                             // SQL table names in use or reserved
};

/// The provenance questions of the paper, as SQL over the store (parameters ?1, ?2, ...);
/// each runs unchanged on SQLite and PostgreSQL.
namespace prov_sql {

/// Q1a. The last writer of table ?1: execution, procedure, role, time.
extern const char* last_writer;
/// Q1b. The table with the most row changes between times ?1 and ?2 (ns).
extern const char* most_updated_table;
/// Q2a. Every row read or written by role ?1 between ?2 and ?3 (ns).
extern const char* rows_of_user;
/// Q2b. Every role that read row ?2 of table ?1.
extern const char* readers_of_row;
/// Q3a. Rows downstream of row ?2 of table ?1: written by transactions that read it, and so on.
extern const char* downstream;
/// Q3b. Rows upstream of row ?2 of table ?1: read by transactions that wrote it, and so on.
extern const char* upstream;
/// Q4. The rows of table ?1 as they were at time ?2 (ns): row_key and value (JSON text) of
/// each row whose last change up to then was not a delete.
extern const char* table_at;

} // namespace prov_sql

} // namespace comb::storage
