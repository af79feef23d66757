// comb::apps::console stored procedures: the console's accounts in a Comb table, and the raw
// bytes of a captured request that the SQL store keeps only as a digest. The console server
// calls them through its node (console_link.hpp). They are deterministic functions of their
// arguments and the tables: the caller hashes passwords (scrypt with a random salt, which
// replay could not redo) and passes the time. Table:
//   console.accounts   username -> {username, password_hash ("scrypt$N$r$p$salt$hash"),
//                      updated_ns}
#pragma once

#include "runtime/procedure_registry.hpp"

#include <caf/error.hpp>

#include <string>
#include <vector>

namespace comb::apps::console {

inline constexpr const char* accounts_table = "console.accounts";

/// Usernames are 1-64 characters of [A-Za-z0-9_.@-]; errc::invalid_argument says so.
caf::error check_username(const std::string& user);

/// Registers, for `roles` (the console calls as "console"):
///   console.account_set  {username, password_hash, now} -> {username, created}
///   console.account_get  {username} -> {username, password_hash}   (read-only; not_found)
///   console.account_list {} -> {users: [username...]}             (read-only, sorted)
///   console.request_raw  {table?, id} -> {id, raw, raw_encoding, bytes}   (read-only;
///                        not_found): the row's raw bytes as the Comb table holds them
///                        (table: httplog_request unless given; only httplog_* tables)
void register_console(runtime::procedure_registry& procs,
                      std::vector<std::string> roles = {"admin", "console"});

} // namespace comb::apps::console
