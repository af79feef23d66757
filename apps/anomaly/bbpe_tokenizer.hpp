// comb::anomaly::bbpe_tokenizer: byte-level byte pair encoding (BBPE). Its vocabulary starts
// from the 256 byte values, so encoding is lossless and never yields an unknown token; merges
// are learned from a corpus. Text is first cut into chunks (runs of letters/digits, runs of
// %XX escapes, runs of punctuation, runs of spaces; a single space joins the chunk after it;
// at most `max_chunk_bytes` bytes each) and merges never cross a chunk boundary.
// Token ids: 0 is padding, 1..256 are the bytes 0..255, 257.. are merges in learned order.
// A trained tokenizer is immutable: const members are thread-safe; training is single-threaded.
#pragma once

#include <caf/expected.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace comb::anomaly {

class bbpe_tokenizer {
public:
  /// The id used to pad sequences; never produced by `encode`.
  static constexpr int32_t pad_id = 0;
  /// Number of ids that exist before any merge (padding and 256 bytes).
  static constexpr int32_t base_vocab = 257;
  /// Longest chunk; longer runs are cut, so encoding costs O(n) for any input.
  static constexpr size_t max_chunk_bytes = 32;

  /// An untrained tokenizer (bytes only: every byte is one token).
  bbpe_tokenizer();

  /// Progress callback for training: (merges done, merges wanted).
  using progress_fn = std::function<void(size_t, size_t)>;

  /// Learns merges from `corpus` until the vocabulary (padding, bytes, merges) holds
  /// `vocab_size` ids, or no pair occurs twice. Deterministic: ties go to the smaller pair.
  /// Errors: errc::invalid_argument when `vocab_size` < 257 or > 1<<20.
  static caf::expected<bbpe_tokenizer> train(const std::vector<std::string_view>& corpus,
                                             size_t vocab_size,
                                             const progress_fn& progress = nullptr);

  /// Encodes `text` into at most `max_tokens` ids (0 = no limit); the tail is dropped.
  std::vector<int32_t> encode(std::string_view text, size_t max_tokens = 0) const;

  /// Appends the ids of `text` to `out`, stopping at `max_tokens` ids in `out` (0 = no limit).
  void encode_into(std::string_view text, std::vector<int32_t>& out, size_t max_tokens = 0) const;

  /// The bytes that `ids` stand for. Errors: errc::invalid_argument for an id outside the
  /// vocabulary or the padding id.
  caf::expected<std::string> decode(const std::vector<int32_t>& ids) const;

  /// Number of ids, padding included.
  size_t vocab_size() const { return token_bytes_.size(); }

  /// Bytes of one token (empty for padding).
  const std::string& token(int32_t id) const { return token_bytes_.at(static_cast<size_t>(id)); }

  /// The learned merges in order: merge k makes id 257 + k from (left, right).
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }

  /// Text form, for storing with the model: "comb-bbpe 1 <n merges>\n" then "l r\n" lines.
  std::string serialize() const;

  /// Reads the text form. Errors: errc::bad_model naming the bad line.
  static caf::expected<bbpe_tokenizer> deserialize(std::string_view text);

  /// Cuts `text` into the chunks that merges stay within (exposed for tests and fuzzing).
  static void chunk(std::string_view text, const std::function<void(std::string_view)>& f);

private:
  void add_merge(int32_t left, int32_t right);
  int32_t lookup(int32_t left, int32_t right) const;
  void encode_chunk(std::string_view chunk, std::vector<int32_t>& out, size_t limit) const;

  std::vector<std::pair<int32_t, int32_t>> merges_;
  std::vector<std::string> token_bytes_;
  // Open-addressing table (left,right) -> merged id; power-of-two size, key 0 is empty.
  std::vector<uint64_t> keys_;
  std::vector<int32_t> values_;
  uint64_t mask_ = 0;
};

} // namespace comb::anomaly
