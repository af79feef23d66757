// comb::runtime::piece: one piece of a compute task (Figure 2 of the paper) and its Cap'n
// Proto wire form (schemas/piece.capnp). A function actor splits a task's payload into pieces
// of at most max_piece_payload bytes; the compute actor pools them by task id (piece_pool).
// Plain values and stateless functions; thread-safe.
#pragma once

#include "runtime/pieces/tensor_spec.hpp"

#include <caf/expected.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace comb::runtime {

/// The largest payload one piece may carry: 1 MiB.
inline constexpr size_t max_piece_payload = size_t{1} << 20;

/// What the compute process does with a task once it is whole.
enum class piece_kind : uint8_t {
  /// Run the model on the payload and return its output.
  infer = 0,
  /// One training step of the model on the payload.
  train = 1,
  /// The payload is the serialized model (name = model id, version = model version).
  load_model = 2,
  /// Load a version the compute process lost (the dispatcher's reload, for tasks pinned to
  /// it): like load_model, but it does not make the version the active one.
  reload_model = 3,
};

/// True for load_model and reload_model.
inline bool is_load(piece_kind k) {
  return k == piece_kind::load_model || k == piece_kind::reload_model;
}

/// "infer", "train", "load_model" or "reload_model".
std::string to_string(piece_kind k);

/// Parses "infer", "train", "load_model" or "reload_model".
caf::expected<piece_kind> parse_piece_kind(std::string_view s);

/// Bytes held elsewhere and shared, not copied: a read-only mapping of a file (a blob segment,
/// runtime/pieces/blob_file_pieces.hpp). `intact()` turns false when the bytes could not be
/// read while they were in use (the file was cut short under its mapping): whatever was
/// computed from them must not be trusted.
class external_bytes {
public:
  virtual ~external_bytes() = default;
  virtual bool intact() const { return true; }
};

/// Bytes owned by a buffer that may be larger: a received piece keeps its whole message and
/// its payload is a window into it, so decoding copies nothing. Or a window into bytes held
/// elsewhere (external_bytes, e.g. a mapped file), shared and read-only. Reads like a byte
/// vector.
class payload_buffer {
public:
  payload_buffer() = default;
  /// All of `bytes`.
  payload_buffer(std::vector<char> bytes) : buf_(std::move(bytes)), size_(buf_.size()) {}
  /// `size` bytes at `offset` of `buffer`.
  payload_buffer(std::vector<char> buffer, size_t offset, size_t size)
    : buf_(std::move(buffer)), offset_(offset), size_(size) {}
  /// `size` bytes at `data`, which `holder` keeps valid (not copied).
  payload_buffer(std::shared_ptr<const external_bytes> holder, const char* data, size_t size)
    : external_(std::move(holder)), external_data_(data), size_(size) {}

  const char* data() const { return external_ ? external_data_ : buf_.data() + offset_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const char* begin() const { return data(); }
  const char* end() const { return data() + size_; }
  /// True when the bytes are held elsewhere (see external_bytes).
  bool external() const { return external_ != nullptr; }
  /// False when external bytes could not be read while in use (external_bytes::intact).
  bool intact() const { return !external_ || external_->intact(); }

  void assign(size_t n, char c) { *this = payload_buffer{std::vector<char>(n, c)}; }
  template <class Iterator>
  void assign(Iterator first, Iterator last) {
    *this = payload_buffer{std::vector<char>(first, last)};
  }

  /// The bytes as a vector of their own, taking the buffer (moved to its front in place when
  /// they lie inside a larger message: no allocation; external bytes are copied). Leaves
  /// this buffer empty.
  std::vector<char> take() {
    if (external_) {
      std::vector<char> copy(external_data_, external_data_ + size_);
      *this = payload_buffer{};
      return copy;
    }
    if (offset_ != 0 && size_ != 0)
      std::memmove(buf_.data(), buf_.data() + offset_, size_);
    buf_.resize(size_);
    auto out = std::move(buf_);
    buf_.clear();
    offset_ = size_ = 0;
    return out;
  }

  friend bool operator==(const payload_buffer& a, const payload_buffer& b) {
    return a.size_ == b.size_ && std::equal(a.begin(), a.end(), b.begin());
  }
  friend bool operator!=(const payload_buffer& a, const payload_buffer& b) { return !(a == b); }

private:
  std::vector<char> buf_;
  size_t offset_ = 0;
  std::shared_ptr<const external_bytes> external_;
  const char* external_data_ = nullptr;
  size_t size_ = 0;
};

/// One piece of a task, decoded.
struct piece {
  uint64_t task_id = 0;
  piece_kind kind = piece_kind::infer;
  std::string model_id;
  /// For load_model the version loaded; for infer/train 0 = the active version.
  uint32_t model_version = 0;
  uint32_t piece_no = 0;
  uint32_t piece_count = 1;
  payload_buffer payload;
  /// The task's input tensors: carried by piece 0 of an infer or train task only (empty: the
  /// payload is opaque bytes).
  std::vector<tensor_spec> tensors;
};

/// Encodes a piece whose payload is `data[0, size)` as a Cap'n Proto flat array. A word-aligned
/// payload becomes the message's second segment, copied once with no zeroing first; an empty
/// or unaligned one is copied into the single segment. `tensors` are the task's input specs
/// (piece 0 only; empty for opaque payloads). Does not validate: malformed pieces can be
/// encoded (tests need them).
std::vector<char> encode_piece(uint64_t task_id, piece_kind kind, std::string_view model_id,
                               uint32_t model_version, uint32_t piece_no, uint32_t piece_count,
                               const char* data, size_t size,
                               const std::vector<tensor_spec>& tensors = {});

/// Encodes `p` (see the overload above).
std::vector<char> encode_piece(const piece& p);

/// Decodes bytes made by encode_piece. Bytes that are not a Piece message, and tensor specs
/// with an unknown dtype or more than 8 dimensions, give errc::corrupt_data naming what was
/// wrong; nothing here throws.
caf::expected<piece> decode_piece(const char* data, size_t size);

/// Decodes bytes made by encode_piece, keeping `bytes` as the payload's buffer (no copy when
/// the buffer is word-aligned, as a vector's is).
caf::expected<piece> decode_piece(std::vector<char>&& bytes);

/// Decodes bytes made by encode_piece (copying the payload out).
inline caf::expected<piece> decode_piece(const std::vector<char>& bytes) {
  return decode_piece(bytes.data(), bytes.size());
}

/// Number of pieces needed for `size` payload bytes with pieces of `piece_size` bytes
/// (at least one, so an empty payload is one empty piece).
inline uint32_t piece_count_for(size_t size, size_t piece_size = max_piece_payload) {
  return size == 0 ? 1u : static_cast<uint32_t>((size + piece_size - 1) / piece_size);
}

} // namespace comb::runtime
