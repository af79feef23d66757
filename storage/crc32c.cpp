#include "storage/crc32c.hpp"

#include <array>
#include <cstring>

namespace comb::storage {

namespace {

constexpr uint32_t poly = 0x82f63b78u;

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
    t[i] = c;
  }
  return t;
}

constexpr auto table = make_table();

uint32_t crc_table(const unsigned char* p, size_t n, uint32_t c) {
  for (size_t i = 0; i < n; ++i)
    c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c;
}

__attribute__((target("sse4.2"))) uint32_t crc_hw(const unsigned char* p, size_t n, uint32_t c) {
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c64 = __builtin_ia32_crc32di(c64, v);
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c64);
  while (n-- > 0)
    c = __builtin_ia32_crc32qi(c, *p++);
  return c;
}

bool have_sse42() {
  static const bool yes = __builtin_cpu_supports("sse4.2");
  return yes;
}

} // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
  c = have_sse42() ? crc_hw(p, n, c) : crc_table(p, n, c);
  return ~c;
}

uint32_t crc32c_table(const void* data, size_t n, uint32_t crc) {
  return ~crc_table(static_cast<const unsigned char*>(data), n, ~crc);
}

bool crc32c_has_hardware() {
  return have_sse42();
}

uint32_t crc32c_hardware(const void* data, size_t n, uint32_t crc) {
  return ~crc_hw(static_cast<const unsigned char*>(data), n, ~crc);
}

} // namespace comb::storage
