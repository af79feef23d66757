// Console accounts: scrypt hashes computed here, stored in the node's console.accounts table.
#include "apps/console/accounts.hpp"

#include "apps/console/console_app.hpp"

#include "base/base64.hpp"
#include "base/errc.hpp"
#include "base/wall_clock.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <charconv>

namespace comb::apps::console {

namespace {

constexpr size_t hash_len = 32;
constexpr size_t salt_len = 16;
// scrypt needs 128 * N * r * p bytes; allow up to 256 MiB so stored hashes of a higher
// cost still verify.
constexpr uint64_t scrypt_maxmem = uint64_t{256} << 20;

bool derive(const std::string& password, const std::string& salt, const scrypt_params& sp,
            unsigned char* out) {
  return EVP_PBE_scrypt(password.data(), password.size(),
                        reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), sp.n,
                        sp.r, sp.p, scrypt_maxmem, out, hash_len)
         == 1;
}

// A well-formed hash of a password nobody has, so that unknown users cost the same work.
const std::string& decoy_hash() {
  static const std::string h = [] {
    auto r = hash_password("comb console decoy password");
    return r ? *r : std::string();
  }();
  return h;
}

} // namespace

caf::expected<std::string> hash_password(const std::string& password, const scrypt_params& sp) {
  std::string salt(salt_len, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()), salt_len) != 1)
    return make_error(errc::storage_error, "no random bytes for a password salt (RAND_bytes)");
  unsigned char out[hash_len];
  if (!derive(password, salt, sp, out))
    return make_error(errc::invalid_argument, "scrypt refused its parameters (N must be a "
                                              "power of two, memory at most 256 MiB)");
  return "scrypt$" + std::to_string(sp.n) + "$" + std::to_string(sp.r) + "$" + std::to_string(sp.p)
         + "$" + base64_encode(salt) + "$"
         + base64_encode(std::string_view(reinterpret_cast<const char*>(out), hash_len));
}

bool verify_password(const std::string& password, const std::string& encoded) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    auto pos = encoded.find('$', start);
    parts.push_back(encoded.substr(start, pos - start));
    if (pos == std::string::npos)
      break;
    start = pos + 1;
  }
  if (parts.size() != 6 || parts[0] != "scrypt")
    return false;
  scrypt_params sp;
  uint64_t* fields[] = {&sp.n, &sp.r, &sp.p};
  for (int i = 0; i < 3; ++i) {
    auto& s = parts[static_cast<size_t>(i) + 1];
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *fields[i]);
    if (ec != std::errc{} || ptr != s.data() + s.size())
      return false;
  }
  auto salt = base64_decode(parts[4]);
  auto want = base64_decode(parts[5]);
  if (!salt || !want || want->size() != hash_len)
    return false;
  unsigned char got[hash_len];
  if (!derive(password, *salt, sp, got))
    return false;
  return CRYPTO_memcmp(got, want->data(), hash_len) == 0;
}

caf::error accounts::set_user(const std::string& user, const std::string& password,
                              const scrypt_params& sp) {
  if (auto err = check_username(user))
    return err;
  if (password.size() < 8 || password.size() > 1024)
    return make_error(errc::invalid_argument,
                      "password of user '" + user + "': use 8 to 1024 bytes");
  auto h = hash_password(password, sp);
  if (!h)
    return h.error();
  auto r = node_.call("console.account_set",
                      {{"username", user}, {"password_hash", *h}, {"now", wall_clock_ns()}});
  if (!r)
    return r.error();
  return {};
}

caf::expected<bool> accounts::check(const std::string& user, const std::string& password) {
  std::string stored;
  if (!check_username(user)) {
    auto r = node_.call("console.account_get", {{"username", user}});
    if (r)
      stored = r->value("password_hash", "");
    else if (!is(r.error(), errc::not_found))
      return r.error();
  }
  if (stored.empty()) {
    // Same work as a real check, so response time does not tell which users exist.
    auto ignored = verify_password(password, decoy_hash());
    static_cast<void>(ignored);
    return false;
  }
  return verify_password(password, stored);
}

caf::expected<std::vector<std::string>> accounts::users() {
  auto r = node_.call("console.account_list", nlohmann::json::object());
  if (!r)
    return r.error();
  std::vector<std::string> out;
  for (auto& u : (*r)["users"])
    if (u.is_string())
      out.push_back(u.get<std::string>());
  return out;
}

} // namespace comb::apps::console
