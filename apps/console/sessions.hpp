// comb::apps::console::session_store: the console's sessions, in memory (a restart logs
// everyone out). A session is created when the login page is shown (anonymous, so the
// login form has a CSRF token too) and replaced by a new id at login (no session
// fixation). Each holds a CSRF token that every form and every state-changing fetch must
// carry. Ids and tokens are 32 random bytes (RAND_bytes), hex. Thread-safe (one mutex).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace comb::apps::console {

struct session {
  std::string id;
  std::string user; ///< empty before login
  std::string csrf;
  int64_t created_ns = 0;
  int64_t last_ns = 0;
};

/// Lifetimes and the cap on how many sessions are kept.
struct session_limits {
  int64_t idle_ns = int64_t{2} * 3600 * 1000000000;
  int64_t max_age_ns = int64_t{12} * 3600 * 1000000000;
  int64_t anonymous_ns = int64_t{30} * 60 * 1000000000;
  size_t max_sessions = 10000; ///< the oldest go first past this
};

class session_store {
public:
  explicit session_store(session_limits limits = {}) : limits_(limits) {}

  /// A new session for `user` (empty: anonymous); returns it.
  session create(const std::string& user, int64_t now_ns);

  /// The live session of that id, its last use set to now; nullopt when unknown or expired.
  std::optional<session> find(const std::string& id, int64_t now_ns);

  /// Ends a session (logout, or the anonymous one replaced at login).
  void drop(const std::string& id);

  size_t size();

private:
  bool expired(const session& s, int64_t now_ns) const;
  session_limits limits_;
  std::mutex mu_;
  std::map<std::string, session> sessions_;
};

/// How many failed logins are allowed before more attempts are refused for a while.
struct throttle_limits {
  int per_user = 5;     ///< failures per username (whether it exists or not)
  int per_address = 20; ///< failures per client address, over all usernames
  int64_t window_ns = int64_t{15} * 60 * 1000000000;
  size_t max_keys = 20000; ///< the oldest windows go first past this
};

/// login_throttle: counts failed logins per username and per client address in fixed
/// windows, so that guessing passwords online costs 15 minutes per few guesses. While a key
/// is over its limit, logins are refused without checking the password (so a right guess
/// tells nothing either). A good login clears its username's count. Thread-safe.
class login_throttle {
public:
  explicit login_throttle(throttle_limits limits = {}) : limits_(limits) {}

  /// Seconds until `user` from `address` may try again; 0: now.
  int64_t wait_s(const std::string& user, const std::string& address, int64_t now_ns);
  void failed(const std::string& user, const std::string& address, int64_t now_ns);
  void succeeded(const std::string& user);

private:
  struct window {
    int64_t start_ns = 0;
    int failures = 0;
  };
  int64_t blocked_for(const std::string& key, int limit, int64_t now_ns);
  throttle_limits limits_;
  std::mutex mu_;
  std::map<std::string, window> windows_;
};

/// `n` random bytes as hex.
std::string random_token(size_t n = 32);

/// Constant-time equality of two tokens.
bool same_token(const std::string& a, const std::string& b);

/// The value of cookie `name` in a Cookie header ("a=1; b=2"), or empty.
std::string cookie_value(const std::string& header, const std::string& name);

} // namespace comb::apps::console
