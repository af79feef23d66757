// comb::xxh3_64 and comb::xxh3_stream (the system libxxhash's run-time dispatch) against
// xxHash compiled inline here for the build's baseline ISA: the stored blob hashes were made
// by the inline code, so both must give the same value for every length and every split.
#include "base/xxh3.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <doctest/doctest.h>

#include <random>
#include <string>

namespace {

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 gen{seed};
  std::string s(n, '\0');
  for (auto& c : s)
    c = static_cast<char>(gen() & 0xff);
  return s;
}

} // namespace

TEST_CASE("xxh3_64 equals inline XXH3 for every length up to 4 KiB and for large inputs") {
  auto bytes = random_bytes(4096, 1);
  for (size_t n = 0; n <= bytes.size(); ++n)
    REQUIRE(comb::xxh3_64(bytes.data(), n) == XXH3_64bits(bytes.data(), n));
  for (size_t n : {size_t{940800}, size_t{1} << 20, (size_t{1} << 20) + 13}) {
    auto big = random_bytes(n, static_cast<uint32_t>(n));
    CHECK(comb::xxh3_64(big) == XXH3_64bits(big.data(), big.size()));
    // an unaligned start
    CHECK(comb::xxh3_64(big.data() + 3, n - 3) == XXH3_64bits(big.data() + 3, n - 3));
  }
  CHECK(comb::xxh3_64("", 0) == XXH3_64bits("", 0));
}

TEST_CASE("xxh3_stream's digest equals the one-shot hash for any split into parts") {
  auto bytes = random_bytes(300000, 2);
  const auto whole = XXH3_64bits(bytes.data(), bytes.size());
  for (size_t part : {size_t{1}, size_t{7}, size_t{64}, size_t{240}, size_t{4096},
                      size_t{256} << 10, bytes.size()}) {
    comb::xxh3_stream s;
    for (size_t at = 0; at < bytes.size(); at += part)
      s.update(bytes.data() + at, std::min(part, bytes.size() - at));
    CHECK(s.digest() == whole);
  }
  comb::xxh3_stream empty;
  CHECK(empty.digest() == XXH3_64bits("", 0));
  // moved-from streams hand their state on
  comb::xxh3_stream a;
  a.update(bytes.data(), 1000);
  comb::xxh3_stream b = std::move(a);
  b.update(bytes.data() + 1000, bytes.size() - 1000);
  CHECK(b.digest() == whole);
}
