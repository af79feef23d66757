// comb::apps::console::accounts: the console's user accounts, kept (in this first version)
// in the console's own SQLite file beside the SQL store (`<store>.console-users`), one row
// per user with an scrypt hash (OpenSSL EVP_PBE_scrypt, N=2^15, r=8, p=1, 16-byte random
// salt) in the form "scrypt$N$r$p$<salt b64>$<hash b64>". Verification compares in constant
// time and spends the same work on unknown users. Thread-safe (one mutex around the file).
#pragma once

#include <caf/expected.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

struct sqlite3;

namespace comb::apps::console {

/// scrypt cost of new hashes; tests may lower it (hashes carry their own parameters).
struct scrypt_params {
  uint64_t n = uint64_t{1} << 15;
  uint64_t r = 8;
  uint64_t p = 1;
};

/// Hashes `password` with a fresh salt.
caf::expected<std::string> hash_password(const std::string& password,
                                         const scrypt_params& params = {});

/// True when `password` matches `encoded` (a hash_password result).
bool verify_password(const std::string& password, const std::string& encoded);

/// The accounts file that goes with an SQL store file.
std::string accounts_file_for(const std::string& store_file);

class accounts {
public:
  /// Opens (creating) the accounts file.
  static caf::expected<std::unique_ptr<accounts>> open(const std::string& file);
  ~accounts();
  accounts(const accounts&) = delete;
  accounts& operator=(const accounts&) = delete;

  /// Adds a user, or sets the password of an existing one. Usernames are 1-64 chars of
  /// [A-Za-z0-9_.@-]; passwords 8-1024 bytes; errc::invalid_argument names the rule broken.
  caf::error set_user(const std::string& user, const std::string& password,
                      const scrypt_params& params = {});

  /// True when the user exists and the password is theirs.
  bool check(const std::string& user, const std::string& password);

  /// Every username, sorted.
  std::vector<std::string> users();

private:
  explicit accounts(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::mutex mu_;
};

} // namespace comb::apps::console
