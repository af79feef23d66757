// libFuzzer target: the Cap'n Proto piece decoder and the piece pool on arbitrary bytes. The
// input is a sequence of [u16 length][bytes] records, each decoded as a piece and, when it
// decodes, added to one pool (so duplicate, disagreeing and out-of-range pieces, specs that do
// not describe the payload and the memory bound are all reached). Must never crash, hang or
// read out of bounds; a decoded piece must re-encode to bytes that decode the same, and a
// whole task's chunks must add up to its size.
#include "runtime/pieces/piece.hpp"
#include "runtime/pieces/piece_pool.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

using namespace comb::runtime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  piece_pool_config cfg;
  cfg.memory_limit = 1u << 20; // small, so that the bound is reached
  cfg.max_piece = 64u << 10;
  piece_pool pool{cfg};
  auto now = piece_pool::clock::now();
  for (size_t at = 0; at + 2 <= size;) {
    size_t n = data[at] | (size_t{data[at + 1]} << 8);
    at += 2;
    n = std::min(n, size - at);
    // A copy in a vector of its own: the decoder may keep the buffer (aligned, as a vector's).
    std::vector<char> bytes(reinterpret_cast<const char*>(data) + at,
                            reinterpret_cast<const char*>(data) + at + n);
    at += n;
    auto p = decode_piece(bytes.data(), bytes.size());
    auto kept = decode_piece(std::vector<char>{bytes});
    if (static_cast<bool>(p) != static_cast<bool>(kept))
      __builtin_trap(); // both decoders agree
    if (!p)
      continue;
    auto again = decode_piece(encode_piece(*p));
    if (!again || again->task_id != p->task_id || again->payload != p->payload
        || again->tensors != p->tensors || again->piece_no != p->piece_no)
      __builtin_trap();
    auto whole = pool.add(std::move(*p), now);
    if (whole && *whole) {
      size_t sum = 0;
      for (auto& c : (*whole)->chunks)
        sum += c.size();
      if (sum != (*whole)->total_bytes || (*whole)->flatten().size() != sum)
        __builtin_trap();
    }
    if (pool.reserved_bytes() > cfg.memory_limit)
      __builtin_trap(); // the memory bound holds
  }
  (void) pool.expire(now + std::chrono::hours{1});
  if (pool.incomplete_tasks() != 0)
    __builtin_trap();
  return 0;
}
