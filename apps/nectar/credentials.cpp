// Nectar's credentials on OpenSSL (see credentials.hpp).
#include "apps/nectar/credentials.hpp"

#include "base/errc.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <vector>

namespace comb::nectar {

namespace {

std::string to_hex(const unsigned char* p, size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  return out;
}

} // namespace

caf::expected<std::string> random_hex(size_t n) {
  std::vector<unsigned char> buf(n);
  if (RAND_bytes(buf.data(), static_cast<int>(n)) != 1)
    return make_error(errc::unavailable, "OpenSSL RAND_bytes failed: no randomness for a token");
  return to_hex(buf.data(), n);
}

caf::expected<std::string> hash_password(std::string_view password, std::string_view salt_hex,
                                         const kdf_params& params) {
  if (params.log2_n < 1 || params.log2_n > 20 || params.r < 1 || params.r > 32 || params.p < 1
      || params.p > 16)
    return make_error(errc::invalid_argument, "scrypt parameters out of range (log2 N "
                                                + std::to_string(params.log2_n) + ", r "
                                                + std::to_string(params.r) + ", p "
                                                + std::to_string(params.p) + ")");
  unsigned char out[32];
  uint64_t n = uint64_t{1} << params.log2_n;
  // Memory scrypt needs is 128 * N * r * p bytes, plus slack.
  uint64_t maxmem = 128 * n * params.r * params.p + (uint64_t{1} << 20);
  if (EVP_PBE_scrypt(password.data(), password.size(),
                     reinterpret_cast<const unsigned char*>(salt_hex.data()), salt_hex.size(), n,
                     params.r, params.p, maxmem, out, sizeof(out))
      != 1)
    return make_error(errc::unavailable, "OpenSSL EVP_PBE_scrypt failed");
  return to_hex(out, sizeof(out));
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return to_hex(md, sizeof(md));
}

std::string hmac_hex(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return to_hex(md, len);
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

} // namespace comb::nectar
