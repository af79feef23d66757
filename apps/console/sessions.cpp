// Console sessions and CSRF tokens.
#include "apps/console/sessions.hpp"

#include <algorithm>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdexcept>
#include <vector>

namespace comb::apps::console {

std::string random_token(size_t n) {
  std::vector<unsigned char> b(n);
  if (RAND_bytes(b.data(), static_cast<int>(n)) != 1)
    throw std::runtime_error("RAND_bytes failed: no random session token");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (auto c : b) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

bool same_token(const std::string& a, const std::string& b) {
  return !a.empty() && a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string cookie_value(const std::string& header, const std::string& name) {
  size_t i = 0;
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ';'))
      ++i;
    auto end = header.find(';', i);
    if (end == std::string::npos)
      end = header.size();
    auto part = header.substr(i, end - i);
    auto eq = part.find('=');
    if (eq != std::string::npos && part.substr(0, eq) == name)
      return part.substr(eq + 1);
    i = end;
  }
  return {};
}

bool session_store::expired(const session& s, int64_t now) const {
  if (s.user.empty())
    return now - s.created_ns > limits_.anonymous_ns;
  return now - s.last_ns > limits_.idle_ns || now - s.created_ns > limits_.max_age_ns;
}

session session_store::create(const std::string& user, int64_t now) {
  session s{random_token(), user, random_token(), now, now};
  std::lock_guard<std::mutex> lock(mu_);
  if (sessions_.size() >= limits_.max_sessions) {
    for (auto it = sessions_.begin(); it != sessions_.end();)
      it = expired(it->second, now) ? sessions_.erase(it) : std::next(it);
    // Still full: anonymous sessions (login pages never submitted) go first, then the oldest.
    while (sessions_.size() >= limits_.max_sessions) {
      auto victim = sessions_.begin();
      for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
        bool anon = it->second.user.empty(), vanon = victim->second.user.empty();
        if ((anon && !vanon) || (anon == vanon && it->second.last_ns < victim->second.last_ns))
          victim = it;
      }
      sessions_.erase(victim);
    }
  }
  sessions_[s.id] = s;
  return s;
}

std::optional<session> session_store::find(const std::string& id, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end())
    return std::nullopt;
  if (expired(it->second, now)) {
    sessions_.erase(it);
    return std::nullopt;
  }
  it->second.last_ns = now;
  return it->second;
}

void session_store::drop(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(id);
}

size_t session_store::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_.size();
}

int64_t login_throttle::blocked_for(const std::string& key, int limit, int64_t now_ns) {
  auto it = windows_.find(key);
  if (it == windows_.end() || now_ns - it->second.start_ns >= limits_.window_ns
      || it->second.failures < limit)
    return 0;
  auto left_ns = it->second.start_ns + limits_.window_ns - now_ns;
  return (left_ns + 999999999) / 1000000000;
}

int64_t login_throttle::wait_s(const std::string& user, const std::string& address,
                               int64_t now_ns) {
  std::lock_guard<std::mutex> lock{mu_};
  return std::max(blocked_for("u:" + user, limits_.per_user, now_ns),
                  blocked_for("a:" + address, limits_.per_address, now_ns));
}

void login_throttle::failed(const std::string& user, const std::string& address, int64_t now_ns) {
  std::lock_guard<std::mutex> lock{mu_};
  for (auto key : {"u:" + user, "a:" + address}) {
    auto& w = windows_[key];
    if (now_ns - w.start_ns >= limits_.window_ns)
      w = window{now_ns, 0};
    ++w.failures;
  }
  while (windows_.size() > limits_.max_keys) {
    auto oldest = windows_.begin();
    for (auto it = windows_.begin(); it != windows_.end(); ++it)
      if (it->second.start_ns < oldest->second.start_ns)
        oldest = it;
    windows_.erase(oldest);
  }
}

void login_throttle::succeeded(const std::string& user) {
  std::lock_guard<std::mutex> lock{mu_};
  windows_.erase("u:" + user);
}

} // namespace comb::apps::console
