// comb::nectar credentials: password hashing with scrypt (OpenSSL EVP_PBE_scrypt), random
// tokens (RAND_bytes), SHA-256 and HMAC-SHA256 in hex, and a constant-time comparison. The
// Nectar server hashes passwords and draws tokens itself, outside the stored procedures, so
// that procedures stay deterministic for replay and a password never reaches the node or its
// provenance log. Stateless functions; thread-safe.
#pragma once

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace comb::nectar {

/// scrypt cost parameters, stored beside each hash so that they can be raised later.
struct kdf_params {
  /// log2 of the CPU/memory cost N (14: N = 16384, 16 MiB with r = 8).
  uint32_t log2_n = 14;
  uint32_t r = 8;
  uint32_t p = 1;
};

/// `n` random bytes from OpenSSL's CSPRNG, as 2n lowercase hex digits.
caf::expected<std::string> random_hex(size_t n);

/// scrypt(password, salt) with `params`, 32 bytes as hex. `salt_hex` is hex text.
caf::expected<std::string> hash_password(std::string_view password, std::string_view salt_hex,
                                         const kdf_params& params);

/// SHA-256 of `data` as hex (a session token is stored as its hash, never as itself).
std::string sha256_hex(std::string_view data);

/// HMAC-SHA256 of `data` under `key`, as hex.
std::string hmac_hex(std::string_view key, std::string_view data);

/// True when `a` and `b` are equal, in time that depends only on their lengths.
bool equal_constant_time(std::string_view a, std::string_view b);

} // namespace comb::nectar
