// The console's stored procedures (see console_app.hpp).
#include "apps/console/console_app.hpp"

#include "base/errc.hpp"
#include "storage/transaction.hpp"

#include <cctype>

namespace comb::apps::console {

using nlohmann::json;
using runtime::arg;
using runtime::call_context;
using storage::transaction;

caf::error check_username(const std::string& u) {
  bool ok = !u.empty() && u.size() <= 64;
  for (unsigned char c : u)
    ok = ok && (std::isalnum(c) || c == '_' || c == '.' || c == '@' || c == '-');
  if (!ok)
    return make_error(errc::invalid_argument,
                      "username '" + u + "': use 1-64 characters of A-Z a-z 0-9 _ . @ -");
  return {};
}

namespace {

constexpr size_t max_users_listed = 10000;

caf::expected<json> account_set(call_context&, transaction& txn, const json& args) {
  auto user = arg<std::string>(args, "username");
  auto hash = arg<std::string>(args, "password_hash");
  if (auto err = check_username(user))
    return err;
  // Only a KDF's output is stored: a plain password sent here by mistake is refused.
  if (hash.rfind("scrypt$", 0) != 0 || hash.size() > 512)
    return make_error(errc::invalid_argument,
                      "console.account_set: password_hash must be a scrypt hash "
                      "(scrypt$N$r$p$salt$hash), never the password");
  auto old = txn.get_row(accounts_table, user);
  if (!old)
    return old.error();
  json row{{"username", user}, {"password_hash", hash}, {"updated_ns", arg<int64_t>(args, "now")}};
  if (auto err = txn.put_row(accounts_table, user, row))
    return err;
  return json{{"username", user}, {"created", !*old}};
}

caf::expected<json> account_get(call_context&, transaction& txn, const json& args) {
  auto user = arg<std::string>(args, "username");
  if (auto err = check_username(user))
    return err;
  auto row = txn.get_row(accounts_table, user);
  if (!row)
    return row.error();
  if (!*row)
    return make_error(errc::not_found, "console.account_get: no user '" + user + "'");
  return json{{"username", user}, {"password_hash", (**row).value("password_hash", "")}};
}

caf::expected<json> account_list(call_context&, transaction& txn, const json&) {
  json users = json::array();
  if (auto err = txn.scan(accounts_table, "", "", [&](std::string_view k, std::string_view) {
        users.push_back(std::string{k});
        return users.size() < max_users_listed;
      }))
    return err;
  return json{{"users", std::move(users)}};
}

caf::expected<json> request_raw(call_context&, transaction& txn, const json& args) {
  auto table = args.is_object() && args.contains("table") ? arg<std::string>(args, "table")
                                                          : std::string{"httplog_request"};
  // The console reads captured requests, nothing else (not the accounts' hashes).
  if (table.rfind("httplog_", 0) != 0)
    return make_error(errc::permission_denied,
                      "console.request_raw reads httplog_* tables only, not '" + table + "'");
  auto id = arg<std::string>(args, "id");
  auto row = txn.get_row(table, id);
  if (!row)
    return row.error();
  if (!*row || !(**row).contains("raw") || !(**row)["raw"].is_string())
    return make_error(errc::not_found,
                      "console.request_raw: no raw bytes for '" + id + "' in " + table);
  auto raw = (**row)["raw"].get<std::string>();
  auto bytes = raw.size();
  return json{{"id", id},
              {"raw", std::move(raw)},
              {"raw_encoding", (**row).value("raw_encoding", "text")},
              {"bytes", bytes}};
}

} // namespace

void register_console(runtime::procedure_registry& procs, std::vector<std::string> roles) {
  procs.add_table(accounts_table);
  // Password hashes are masked in the SQL store, which every console user reads.
  procs.mark_private(accounts_table, {"password_hash"});
  auto opts = [&](std::string partition_by, bool read_only) {
    runtime::procedure_options o;
    o.roles = roles;
    o.partition_by = std::move(partition_by);
    o.read_only = read_only;
    o.max_args_bytes = 4 * 1024;
    return o;
  };
  auto set = opts("username", false);
  set.private_args = {"password_hash"};
  procs.add("console.account_set", account_set, std::move(set));
  auto get = opts("username", true);
  get.private_result = {"password_hash"};
  procs.add("console.account_get", account_get, std::move(get));
  procs.add("console.account_list", account_list, opts("", true));
  procs.add("console.request_raw", request_raw, opts("", true));
}

} // namespace comb::apps::console
