// comb::apps::console::accounts: the console's user accounts, kept in the Comb table
// console.accounts of the console's node (console_app.hpp), one row per user with an scrypt
// hash (OpenSSL EVP_PBE_scrypt, N=2^15, r=8, p=1, 16-byte random salt) in the form
// "scrypt$N$r$p$<salt b64>$<hash b64>". The console hashes and verifies; the node stores
// only hashes (the password never reaches the node, its log or the SQL store). Verification
// compares in constant time and spends the same work on unknown users. Thread-safe.
#pragma once

#include "apps/console/console_link.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <vector>

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

class accounts {
public:
  explicit accounts(console_link& node) : node_(node) {}

  /// Adds a user, or sets the password of an existing one. Usernames are 1-64 chars of
  /// [A-Za-z0-9_.@-]; passwords 8-1024 bytes; errc::invalid_argument names the rule broken;
  /// the node's errors (unreachable, ...) come back as they are.
  caf::error set_user(const std::string& user, const std::string& password,
                      const scrypt_params& params = {});

  /// True when the user exists and the password is theirs; an error when the node could not
  /// say (then nobody is let in).
  caf::expected<bool> check(const std::string& user, const std::string& password);

  /// Every username, sorted.
  caf::expected<std::vector<std::string>> users();

private:
  console_link& node_;
};

} // namespace comb::apps::console
