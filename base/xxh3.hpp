// comb base: XXH3-64, the hash that checks blob bytes (blob store frames, blob pieces, outbox
// payloads). One place calls xxHash, through the system libxxhash's x86 dispatch, which picks
// the widest vector unit this CPU has (AVX-512, AVX2, SSE2) at run time: compiled inline for
// the build's baseline ISA (SSE2), XXH3 of a 1 MB MNIST block took about 6x longer. The
// values are those of XXH3_64bits whatever the unit, so hashes already stored stay valid.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace comb {

/// XXH3-64 of `size` bytes at `data`.
uint64_t xxh3_64(const void* data, size_t size);

inline uint64_t xxh3_64(std::string_view bytes) {
  return xxh3_64(bytes.data(), bytes.size());
}

/// XXH3-64 of bytes that arrive in parts: the digest equals xxh3_64 of the parts joined.
class xxh3_stream {
public:
  xxh3_stream();
  ~xxh3_stream();
  xxh3_stream(xxh3_stream&&) noexcept;
  xxh3_stream& operator=(xxh3_stream&&) noexcept;

  void update(const void* data, size_t size);
  uint64_t digest() const;

private:
  struct state;
  std::unique_ptr<state> state_;
};

} // namespace comb
