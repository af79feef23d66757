// comb::runtime::procedure_registry: the stored procedures a node can run, by name, with the
// roles allowed to call each, how its calls are partitioned, and the tables it needs. Filled
// in before a node starts and then only read, so concurrent reads are safe.
#pragma once

#include "storage/options.hpp"

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace comb::storage {
class transaction;
} // namespace comb::storage

namespace comb::runtime {

/// What a running procedure knows about its call.
struct call_context {
  uint64_t execution_id = 0;
  uint64_t parent_id = 0;
  std::string_view procedure;
  std::string_view role;
  uint32_t partition = 0;
  uint32_t partitions = 1;
  /// Function calls this execution recorded so far (runtime::outbox numbers them with it).
  uint32_t outbox_calls = 0;
};

/// A stored procedure: runs inside one transaction, returns a JSON value or an error.
/// Returning an error or throwing rolls the transaction back.
using procedure_fn = std::function<caf::expected<nlohmann::json>(
  call_context& ctx, storage::transaction& txn, const nlohmann::json& args)>;

struct procedure_options {
  /// Arguments, and fields of the result, that hold credentials (password hashes, session
  /// keys): the provenance log keeps them (replay needs them), the SQL store the log is
  /// spooled into shows them masked (storage::spool_privacy), since every console user reads it.
  std::vector<std::string> private_args;
  std::vector<std::string> private_result;
  /// Roles allowed to call; "*" allows every role.
  std::vector<std::string> roles{"admin"};
  /// Name of the argument whose value picks the partition (hash of it); empty: partition 0.
  std::string partition_by;
  /// The procedure only reads (no group-commit wait, recorded as read-only).
  bool read_only = false;
  /// Largest accepted argument text, in bytes.
  size_t max_args_bytes = 1u << 20;
  /// Name of the argument naming a stored model the procedure reads (its active version,
  /// kind, digest); empty: none. In a cluster the gateway gives the node that runs the call a
  /// mirror of the model when another node holds its partition (runtime::model_store).
  std::string model_arg;
};

struct procedure_def {
  std::string name;
  procedure_fn fn;
  procedure_options opts;

  /// True when `role` may call this procedure.
  bool allows(std::string_view role) const;
};

/// Thrown by arg<T>() for a missing or mistyped argument; turned into errc::invalid_argument.
class bad_argument : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Reads argument `name` as T, or throws bad_argument naming the argument and the problem.
template <class T>
T arg(const nlohmann::json& args, const char* name) {
  if (!args.is_object())
    throw bad_argument("arguments must be a JSON object");
  auto i = args.find(name);
  if (i == args.end())
    throw bad_argument(std::string{"missing argument '"} + name + "'");
  try {
    return i->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw bad_argument(std::string{"argument '"} + name + "' has the wrong type (" + i->type_name()
                       + ")");
  }
}

/// Destroys what `j` holds, leaving null: an object's or array's members first, each on its
/// own, then the container, now empty. nlohmann's destructor first moves every member of a
/// non-empty container into a vector it allocates (so that deep values are destroyed without
/// recursion); for a call's few arguments that costs about as much as the rest of their
/// destruction. Each member still goes through that destructor, so deep values are no deeper
/// a recursion than before.
inline void release_json(nlohmann::json& j) noexcept {
  if (j.is_object())
    j.get_ref<nlohmann::json::object_t&>().clear();
  else if (j.is_array())
    j.get_ref<nlohmann::json::array_t&>().clear();
  j = nullptr;
}

class procedure_registry {
public:
  /// Registers a procedure; a second registration of the same name replaces the first.
  void add(std::string name, procedure_fn fn, procedure_options opts = {});

  /// A table the procedures need.
  struct table_decl {
    std::string name;
    storage::table_kind kind = storage::table_kind::rows;
    /// Rows belong to the partition their key hashes to (partition_hash(key) % partitions,
    /// the hash routing uses), so in a cluster each node holds its partitions' rows and a
    /// transaction may touch only rows of partitions its node runs. Otherwise the table is
    /// node-local: each node has its own (outbox, model store, logs).
    bool partitioned = false;
    /// Row fields that hold credentials, and whether the row keys do (a session table keyed
    /// by the session): masked in the SQL store, as private_args are.
    std::vector<std::string> private_fields;
    bool private_keys = false;
  };

  /// Declares a node-local table the procedures need; nodes create declared tables at start.
  void add_table(std::string name, storage::table_kind kind = storage::table_kind::rows);

  /// Declares a partitioned table (table_decl::partitioned): route the procedures that write
  /// a row by an argument holding the row's key, e.g. bank.open by "account".
  void add_partitioned_table(std::string name,
                             storage::table_kind kind = storage::table_kind::rows);

  /// Marks fields of the rows of `table` (declared before, or declared now as node-local) and,
  /// with `keys`, its row keys as private (table_decl::private_fields).
  void mark_private(std::string_view table, std::vector<std::string> fields, bool keys = false);

  /// True when `table` was declared partitioned.
  bool is_partitioned(std::string_view table) const;

  /// The procedure of that name, or nullptr.
  const procedure_def* find(std::string_view name) const;

  /// All procedure names, sorted.
  std::vector<std::string> names() const;

  const std::vector<table_decl>& tables() const { return tables_; }

  /// The partition (0..n-1) an invocation of `def` with `args` runs on, or an error when the
  /// partitioning argument is missing.
  caf::expected<uint32_t> partition_of(const procedure_def& def, const nlohmann::json& args,
                                       uint32_t n) const;

private:
  std::map<std::string, procedure_def, std::less<>> procs_;
  std::vector<table_decl> tables_;
};

/// Hash used to place keys on partitions (FNV-1a 64).
uint64_t partition_hash(std::string_view key);

/// A fresh execution id, unique within this process and across restarts (time-based,
/// strictly increasing).
uint64_t next_execution_id();

} // namespace comb::runtime
