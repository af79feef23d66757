#include "runtime/pieces/model_digest.hpp"

#include <openssl/evp.h>

#include <memory>

namespace comb::runtime {

namespace {

std::string hex(const unsigned char* md, unsigned len) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(digits[md[i] >> 4]);
    out.push_back(digits[md[i] & 15]);
  }
  return out;
}

} // namespace

std::string model_digest(const std::vector<payload_buffer>& chunks) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  for (const auto& c : chunks)
    EVP_DigestUpdate(ctx.get(), c.data(), c.size());
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return hex(md, len);
}

std::string model_digest(const char* data, size_t size) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(data, size, md, &len, EVP_sha256(), nullptr);
  return hex(md, len);
}

} // namespace comb::runtime
