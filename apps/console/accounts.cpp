// Console accounts: scrypt hashes in the console's own SQLite file.
#include "apps/console/accounts.hpp"

#include "base/base64.hpp"
#include "base/errc.hpp"
#include "base/wall_clock.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

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

bool valid_user(const std::string& u) {
  if (u.empty() || u.size() > 64)
    return false;
  for (unsigned char c : u)
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '@' || c == '-'))
      return false;
  return true;
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

std::string accounts_file_for(const std::string& store_file) {
  return store_file + ".console-users";
}

caf::expected<std::unique_ptr<accounts>> accounts::open(const std::string& file) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(file.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return make_error(errc::storage_error,
                      "cannot open the console's accounts " + file + ": " + msg);
  }
  std::unique_ptr<accounts> self(new accounts(db));
  sqlite3_busy_timeout(db, 5000);
  char* err = nullptr;
  if (sqlite3_exec(db,
                   "CREATE TABLE IF NOT EXISTS console_users (username TEXT PRIMARY KEY, "
                   "password_hash TEXT NOT NULL, updated_ns INTEGER NOT NULL)",
                   nullptr, nullptr, &err)
      != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    return make_error(errc::storage_error,
                      "cannot create the accounts table in " + file + ": " + msg);
  }
  return self;
}

accounts::~accounts() {
  sqlite3_close(db_);
}

caf::error accounts::set_user(const std::string& user, const std::string& password,
                              const scrypt_params& sp) {
  if (!valid_user(user))
    return make_error(errc::invalid_argument,
                      "username '" + user + "': use 1-64 characters of A-Z a-z 0-9 _ . @ -");
  if (password.size() < 8 || password.size() > 1024)
    return make_error(errc::invalid_argument,
                      "password of user '" + user + "': use 8 to 1024 bytes");
  auto h = hash_password(password, sp);
  if (!h)
    return h.error();
  std::lock_guard<std::mutex> lock(mu_);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_,
                     "INSERT INTO console_users(username, password_hash, updated_ns) "
                     "VALUES (?, ?, ?) ON CONFLICT(username) DO UPDATE SET "
                     "password_hash = excluded.password_hash, updated_ns = excluded.updated_ns",
                     -1, &st, nullptr);
  sqlite3_bind_text(st, 1, user.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 2, h->c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 3, wall_clock_ns());
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE)
    return make_error(errc::storage_error,
                      "cannot store user '" + user + "': " + sqlite3_errmsg(db_));
  return {};
}

bool accounts::check(const std::string& user, const std::string& password) {
  std::string stored;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db_, "SELECT password_hash FROM console_users WHERE username = ?", -1, &st,
                       nullptr);
    sqlite3_bind_text(st, 1, user.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW)
      stored = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
  }
  if (stored.empty()) {
    // Same work as a real check, so response time does not tell which users exist.
    auto ignored = verify_password(password, decoy_hash());
    static_cast<void>(ignored);
    return false;
  }
  return verify_password(password, stored);
}

std::vector<std::string> accounts::users() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db_, "SELECT username FROM console_users ORDER BY username", -1, &st, nullptr);
  while (sqlite3_step(st) == SQLITE_ROW)
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  return out;
}

} // namespace comb::apps::console
