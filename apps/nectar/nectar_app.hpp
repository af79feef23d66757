// comb::nectar stored procedures: the social network Nectar as procedures over Comb tables.
// The HTTP server (server.hpp) calls them; they are deterministic functions of their
// arguments and the tables (the server passes the time, hashes passwords and draws session
// tokens), so that replay re-executes them exactly. Tables:
//   nectar.users     lower(username) -> {username, display_name, salt, hash, log2_n, r, p,
//                    created_ns}
//   nectar.sessions  sha256(token) -> {user, expires_ns, created_ns}
//   nectar.posts     "<user>/<16 hex of ~ts>.<16 hex execution>" -> {user, text, ts_ns,
//                    execution}: a user's posts newest first in key order
//   nectar.follows   "<follower>/<followee>" -> {since_ns}
// Every result carries "execution", the id of the execution that produced it, so the server
// can link the HTTP request to it.
#pragma once

#include "runtime/procedure_registry.hpp"

#include <string>
#include <vector>

namespace comb::nectar {

/// Registers, for `roles` (the server calls as "nectar"):
///   nectar.register  {username, display_name, salt, hash, log2_n, r, p, now}
///   nectar.auth_info {username} -> {salt, log2_n, r, p}       (read-only; not_found)
///   nectar.login     {username, hash, session, now, ttl_s} -> {username, display_name}
///                    (permission_denied "wrong username or password")
///   nectar.logout    {session}
///   nectar.whoami    {session, now} -> {me: {username, display_name} | null}
///   nectar.post      {session, text, now} -> {id}
///   nectar.follow    {session, username, now}, nectar.unfollow {session, username}
///   nectar.feed      {session, now, limit?} -> {me, posts: [{user, display_name, text,
///                    ts_ns}], following: [...]}
///   nectar.profile   {username, session?, now, limit?} -> {me, user, posts, following,
///                    followed_by_me}
///   nectar.search    {q, session?, now, limit?} -> {me, users, posts}
/// Calls that need a user take the session's hash; an unknown or expired session is
/// errc::permission_denied "not logged in".
void register_nectar(runtime::procedure_registry& procs,
                     std::vector<std::string> roles = {"admin", "nectar"});

} // namespace comb::nectar
