// comb::runtime::builtin_tasks: the compute steps that need no model weights, used until the
// kernels land and to test the whole path end to end: "echo" (output = payload), "checksum"
// (a 64-bit hash and the length of the payload) and "matmul" (C = A x B of floats). They are
// the same functions whether called in-process or by the compute actor, so benchmarks can
// compare both. Stateless; thread-safe.
#pragma once

#include "runtime/pieces/piece.hpp"

#include <caf/expected.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace comb::runtime {

/// True when `model_id` names a built-in task ("echo", "checksum", "matmul").
bool is_builtin_model(std::string_view model_id);

/// Streaming 64-bit hash over a byte stream; independent of how the stream is chunked.
class checksum64 {
public:
  explicit checksum64(uint64_t seed = 0);
  /// Feeds `size` more bytes.
  void update(const char* data, size_t size);
  /// Hash of all bytes fed so far (does not change the state).
  uint64_t digest() const;
  uint64_t length() const { return length_; }

private:
  uint64_t h_;
  uint64_t length_ = 0;
  unsigned char tail_[8];
  size_t tail_size_ = 0;
};

/// Output of "checksum": 16 bytes, the hash then the length, both little-endian uint64.
std::vector<char> checksum_output(const std::vector<payload_buffer>& chunks, uint64_t seed = 0);

/// Reads the hash and length back from checksum_output's bytes.
caf::expected<std::pair<uint64_t, uint64_t>> parse_checksum_output(const std::vector<char>& out);

/// Payload of "matmul": uint32 m, k, n (little-endian), then A (m x k floats, row-major),
/// then B (k x n floats). Output: C (m x n floats).
std::vector<char> make_matmul_payload(uint32_t m, uint32_t k, uint32_t n,
                                      const std::vector<float>& a, const std::vector<float>& b);

/// Runs "matmul" on a whole payload; a payload of the wrong size gives errc::invalid_argument.
caf::expected<std::vector<char>> matmul_output(const std::vector<char>& payload);

/// Runs the built-in `model_id` on a task's chunks.
caf::expected<std::vector<char>> run_builtin(std::string_view model_id,
                                             const std::vector<payload_buffer>& chunks);

} // namespace comb::runtime
