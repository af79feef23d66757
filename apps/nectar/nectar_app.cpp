// Nectar's stored procedures (see nectar_app.hpp).
#include "apps/nectar/nectar_app.hpp"

#include "apps/nectar/credentials.hpp"
#include "apps/nectar/form.hpp"
#include "base/errc.hpp"
#include "storage/transaction.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>

namespace comb::nectar {

using nlohmann::json;
using runtime::arg;
using runtime::call_context;
using storage::transaction;

namespace {

constexpr const char* users_table = "nectar.users";
constexpr const char* sessions_table = "nectar.sessions";
constexpr const char* posts_table = "nectar.posts";
constexpr const char* follows_table = "nectar.follows";

/// Most follows read for a feed, posts read per user, rows scanned by a search.
constexpr size_t max_follows = 1000;
constexpr size_t max_limit = 200;
constexpr size_t max_search_scan = 20000;

std::string hex16(uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

json decode_row(std::string_view v) {
  return json::from_msgpack(v, true, false);
}

template <class T>
T opt_arg(const json& args, const char* name, T fallback) {
  return args.is_object() && args.contains(name) && !args[name].is_null() ? arg<T>(args, name)
                                                                          : fallback;
}

size_t limit_arg(const json& args, size_t fallback) {
  auto n = opt_arg<int64_t>(args, "limit", static_cast<int64_t>(fallback));
  return static_cast<size_t>(std::clamp<int64_t>(n, 1, max_limit));
}

caf::error checked(caf::error err, const char* proc) {
  if (err)
    return make_error(errc::invalid_argument, std::string{proc} + ": " + describe(err));
  return {};
}

/// The user a session belongs to ({username, display_name} and the users key), or nullopt
/// for no, an unknown or an expired session.
struct user_ref {
  std::string key;
  json row;
};

caf::expected<std::optional<user_ref>> session_user(transaction& txn, const json& args) {
  auto session = opt_arg<std::string>(args, "session", "");
  if (session.empty())
    return std::optional<user_ref>{};
  auto now = arg<int64_t>(args, "now");
  auto s = txn.get_row(sessions_table, session);
  if (!s)
    return s.error();
  if (!*s || (**s).value("expires_ns", int64_t{0}) <= now)
    return std::optional<user_ref>{};
  auto key = (**s).value("user", "");
  auto u = txn.get_row(users_table, key);
  if (!u)
    return u.error();
  if (!*u)
    return std::optional<user_ref>{};
  return std::optional<user_ref>{user_ref{key, std::move(**u)}};
}

caf::expected<user_ref> require_user(transaction& txn, const json& args, const char* proc) {
  auto u = session_user(txn, args);
  if (!u)
    return u.error();
  if (!*u)
    return make_error(errc::permission_denied, std::string{proc} + ": not logged in");
  return std::move(**u);
}

json public_user(const json& row) {
  return json{{"username", row.value("username", "")},
              {"display_name", row.value("display_name", "")}};
}

json me_of(const std::optional<user_ref>& u) {
  return u ? public_user(u->row) : json(nullptr);
}

/// Up to `limit` posts of user `key`, newest first.
caf::error posts_of(transaction& txn, const std::string& key, size_t limit, json& out) {
  auto from = key + "/";
  auto to = key + "0"; // '0' follows '/' in ASCII
  return txn.scan(posts_table, from, to, [&](std::string_view, std::string_view v) {
    auto row = decode_row(v);
    if (!row.is_discarded())
      out.push_back(std::move(row));
    return out.size() < limit;
  });
}

/// The users keys `key` follows.
caf::expected<std::vector<std::string>> following_of(transaction& txn, const std::string& key) {
  std::vector<std::string> out;
  auto from = key + "/";
  auto to = key + "0";
  if (auto err = txn.scan(follows_table, from, to, [&](std::string_view k, std::string_view) {
        out.emplace_back(k.substr(from.size()));
        return out.size() < max_follows;
      }))
    return err;
  return out;
}

/// Adds each post's author display name (and drops internal fields).
caf::error decorate(transaction& txn, json& posts) {
  std::map<std::string, std::string> names;
  for (auto& p : posts) {
    auto user = p.value("user", "");
    auto i = names.find(user);
    if (i == names.end()) {
      auto u = txn.get_row(users_table, user);
      if (!u)
        return u.error();
      std::string name = *u ? (**u).value("display_name", "") : std::string{};
      std::string username = *u ? (**u).value("username", user) : user;
      i = names.emplace(user, name).first;
      p["username"] = username;
    } else {
      p["username"] = p.value("user", "");
    }
    p["display_name"] = i->second;
  }
  return {};
}

caf::expected<json> do_register(call_context& ctx, transaction& txn, const json& args) {
  auto username = arg<std::string>(args, "username");
  auto display = opt_arg<std::string>(args, "display_name", "");
  if (auto err = checked(check_username(username), "nectar.register"))
    return err;
  if (auto err = checked(check_display_name(display), "nectar.register"))
    return err;
  auto salt = arg<std::string>(args, "salt");
  auto hash = arg<std::string>(args, "hash");
  if (salt.size() != 32 || hash.size() != 64)
    return make_error(errc::invalid_argument,
                      "nectar.register: salt must be 32 and hash 64 hex digits");
  json row{{"username", username},
           {"display_name", display.empty() ? username : display},
           {"salt", salt},
           {"hash", hash},
           {"log2_n", arg<uint32_t>(args, "log2_n")},
           {"r", arg<uint32_t>(args, "r")},
           {"p", arg<uint32_t>(args, "p")},
           {"created_ns", arg<int64_t>(args, "now")}};
  if (auto err = txn.insert_row(users_table, lower_ascii(username), row)) {
    if (is(err, errc::already_exists))
      return make_error(errc::already_exists,
                        "nectar.register: username '" + username + "' is taken");
    return err;
  }
  return json{{"username", username}, {"execution", ctx.execution_id}};
}

caf::expected<json> auth_info(call_context& ctx, transaction& txn, const json& args) {
  auto username = arg<std::string>(args, "username");
  auto u = txn.get_row(users_table, lower_ascii(username));
  if (!u)
    return u.error();
  if (!*u)
    return make_error(errc::not_found, "nectar.auth_info: no user '" + username + "'");
  return json{{"salt", (**u)["salt"]},
              {"log2_n", (**u)["log2_n"]},
              {"r", (**u)["r"]},
              {"p", (**u)["p"]},
              {"execution", ctx.execution_id}};
}

caf::expected<json> login(call_context& ctx, transaction& txn, const json& args) {
  auto username = arg<std::string>(args, "username");
  auto hash = arg<std::string>(args, "hash");
  auto session = arg<std::string>(args, "session");
  auto now = arg<int64_t>(args, "now");
  auto ttl = opt_arg<int64_t>(args, "ttl_s", 7 * 24 * 3600);
  if (session.size() != 64)
    return make_error(errc::invalid_argument, "nectar.login: session must be 64 hex digits");
  auto key = lower_ascii(username);
  auto u = txn.get_row(users_table, key);
  if (!u)
    return u.error();
  // One answer for an unknown user and a wrong password: no user enumeration.
  if (!*u || !equal_constant_time((**u).value("hash", ""), hash))
    return make_error(errc::permission_denied, "nectar.login: wrong username or password");
  json srow{{"user", key}, {"expires_ns", now + ttl * 1'000'000'000}, {"created_ns", now}};
  if (auto err = txn.insert_row(sessions_table, session, srow))
    return err;
  auto out = public_user(**u);
  out["execution"] = ctx.execution_id;
  return out;
}

caf::expected<json> logout(call_context& ctx, transaction& txn, const json& args) {
  auto session = arg<std::string>(args, "session");
  if (auto err = txn.del(sessions_table, session))
    return err;
  return json{{"execution", ctx.execution_id}};
}

caf::expected<json> whoami(call_context& ctx, transaction& txn, const json& args) {
  auto u = session_user(txn, args);
  if (!u)
    return u.error();
  return json{{"me", me_of(*u)}, {"execution", ctx.execution_id}};
}

caf::expected<json> post(call_context& ctx, transaction& txn, const json& args) {
  auto me = require_user(txn, args, "nectar.post");
  if (!me)
    return me.error();
  auto text = arg<std::string>(args, "text");
  if (auto err = checked(check_post_text(text), "nectar.post"))
    return err;
  auto now = arg<int64_t>(args, "now");
  auto id = me->key + "/" + hex16(~static_cast<uint64_t>(now)) + "." + hex16(ctx.execution_id);
  json row{{"user", me->key}, {"text", text}, {"ts_ns", now}, {"execution", ctx.execution_id}};
  if (auto err = txn.insert_row(posts_table, id, row))
    return err;
  return json{{"id", id}, {"execution", ctx.execution_id}};
}

caf::expected<json> follow_or_unfollow(call_context& ctx, transaction& txn, const json& args,
                                       bool follow) {
  const char* proc = follow ? "nectar.follow" : "nectar.unfollow";
  auto me = require_user(txn, args, proc);
  if (!me)
    return me.error();
  auto username = arg<std::string>(args, "username");
  if (auto err = checked(check_username(username), proc))
    return err;
  auto target = lower_ascii(username);
  auto t = txn.get_row(users_table, target);
  if (!t)
    return t.error();
  if (!*t)
    return make_error(errc::not_found, std::string{proc} + ": no user '" + username + "'");
  if (target == me->key)
    return make_error(errc::invalid_argument, std::string{proc} + ": you cannot follow yourself");
  auto key = me->key + "/" + target;
  if (follow) {
    if (auto err = txn.put_row(follows_table, key, json{{"since_ns", arg<int64_t>(args, "now")}}))
      return err;
  } else if (auto err = txn.del(follows_table, key)) {
    return err;
  }
  return json{{"username", (**t).value("username", username)}, {"execution", ctx.execution_id}};
}

caf::expected<json> feed(call_context& ctx, transaction& txn, const json& args) {
  auto me = require_user(txn, args, "nectar.feed");
  if (!me)
    return me.error();
  auto limit = limit_arg(args, 50);
  auto following = following_of(txn, me->key);
  if (!following)
    return following.error();
  json posts = json::array();
  if (auto err = posts_of(txn, me->key, limit, posts))
    return err;
  for (auto& f : *following)
    if (auto err = posts_of(txn, f, limit, posts))
      return err;
  std::stable_sort(posts.begin(), posts.end(), [](const json& a, const json& b) {
    return a.value("ts_ns", int64_t{0}) > b.value("ts_ns", int64_t{0});
  });
  if (posts.size() > limit)
    posts.erase(posts.begin() + static_cast<std::ptrdiff_t>(limit), posts.end());
  if (auto err = decorate(txn, posts))
    return err;
  json names = json::array();
  for (auto& f : *following) {
    auto u = txn.get_row(users_table, f);
    if (!u)
      return u.error();
    if (*u)
      names.push_back(public_user(**u));
  }
  return json{{"me", public_user(me->row)},
              {"posts", std::move(posts)},
              {"following", std::move(names)},
              {"execution", ctx.execution_id}};
}

caf::expected<json> profile(call_context& ctx, transaction& txn, const json& args) {
  auto me = session_user(txn, args);
  if (!me)
    return me.error();
  auto username = arg<std::string>(args, "username");
  if (auto err = checked(check_username(username), "nectar.profile"))
    return err;
  auto key = lower_ascii(username);
  auto u = txn.get_row(users_table, key);
  if (!u)
    return u.error();
  if (!*u)
    return make_error(errc::not_found, "nectar.profile: no user '" + username + "'");
  json posts = json::array();
  if (auto err = posts_of(txn, key, limit_arg(args, 50), posts))
    return err;
  if (auto err = decorate(txn, posts))
    return err;
  auto following = following_of(txn, key);
  if (!following)
    return following.error();
  bool followed = false;
  if (*me) {
    auto f = txn.get(follows_table, (*me)->key + "/" + key);
    if (!f)
      return f.error();
    followed = f->has_value();
  }
  return json{{"me", me_of(*me)},           {"user", public_user(**u)},
              {"posts", std::move(posts)},  {"following", following->size()},
              {"followed_by_me", followed}, {"execution", ctx.execution_id}};
}

bool contains_ci(std::string_view hay, const std::string& needle_lower) {
  if (needle_lower.empty())
    return false;
  return lower_ascii(hay).find(needle_lower) != std::string::npos;
}

caf::expected<json> search(call_context& ctx, transaction& txn, const json& args) {
  auto me = session_user(txn, args);
  if (!me)
    return me.error();
  auto q = arg<std::string>(args, "q");
  if (auto err = checked(check_search_text(q), "nectar.search"))
    return err;
  auto limit = limit_arg(args, 20);
  auto needle = lower_ascii(q);
  json users = json::array(), posts = json::array();
  size_t scanned = 0;
  auto visit = [&](json& out) {
    return [&](std::string_view k, std::string_view v) {
      auto row = decode_row(v);
      if (!row.is_discarded()) {
        bool hit = &out == &users
                     ? contains_ci(k, needle) || contains_ci(row.value("display_name", ""), needle)
                     : contains_ci(row.value("text", ""), needle);
        if (hit)
          out.push_back(&out == &users ? public_user(row) : row);
      }
      return out.size() < limit && ++scanned < max_search_scan;
    };
  };
  if (!needle.empty()) {
    if (auto err = txn.scan(users_table, "", "", visit(users)))
      return err;
    scanned = 0;
    if (auto err = txn.scan(posts_table, "", "", visit(posts)))
      return err;
    if (auto err = decorate(txn, posts))
      return err;
  }
  return json{{"me", me_of(*me)},
              {"q", q},
              {"users", std::move(users)},
              {"posts", std::move(posts)},
              {"execution", ctx.execution_id}};
}

} // namespace

void register_nectar(runtime::procedure_registry& procs, std::vector<std::string> roles) {
  procs.add_table(users_table);
  procs.add_table(sessions_table);
  procs.add_table(posts_table);
  procs.add_table(follows_table);
  // Credentials: password hashes, and session keys (the SHA-256 of the cookie's token, which
  // the node keys sessions by) are masked in the SQL store (procedure_options::private_args).
  procs.mark_private(users_table, {"hash"});
  procs.mark_private(sessions_table, {}, /*keys=*/true);
  auto w = [&](std::string partition_by) {
    runtime::procedure_options o;
    o.roles = roles;
    o.partition_by = std::move(partition_by);
    o.max_args_bytes = 64 * 1024;
    o.private_args = {"session"};
    return o;
  };
  auto r = [&](std::string partition_by) {
    auto o = w(std::move(partition_by));
    o.read_only = true;
    return o;
  };
  auto with_hash = [](runtime::procedure_options o) {
    o.private_args.push_back("hash");
    return o;
  };
  procs.add("nectar.register", do_register, with_hash(w("username")));
  procs.add("nectar.auth_info", auth_info, r("username"));
  procs.add("nectar.login", login, with_hash(w("username")));
  procs.add("nectar.logout", logout, w("session"));
  procs.add("nectar.whoami", whoami, r(""));
  procs.add("nectar.post", post, w("session"));
  procs.add(
    "nectar.follow",
    [](call_context& c, transaction& t, const json& a) {
      return follow_or_unfollow(c, t, a, true);
    },
    w("session"));
  procs.add(
    "nectar.unfollow",
    [](call_context& c, transaction& t, const json& a) {
      return follow_or_unfollow(c, t, a, false);
    },
    w("session"));
  procs.add("nectar.feed", feed, r(""));
  procs.add("nectar.profile", profile, r(""));
  procs.add("nectar.search", search, r(""));
}

} // namespace comb::nectar
