// comb::storage::log_record: one provenance log record in memory, and its encoding. A record's
// bytes are its lsn (8 bytes, little-endian), then the record in one of two formats:
// format 2, compact (what encode writes): the bytes ff ff ff 02, a flag byte, the integers as
// varints, each text or byte field as its size (a varint) and its bytes, and the row changes
// last, after one flag byte per change, so that a committed invocation's WAL head is a prefix
// of its record (encode_committed); flag bits 8 and 16 say that the arguments or the result
// are kept as MessagePack (storage/record_value.hpp), which decode turns back into the same
// JSON text; format 1 (records written before format 2): a flat Cap'n
// Proto LogRecord (schemas/log_record.capnp). decode reads both. Plain value type; functions
// are thread-safe.
#pragma once

#include "storage/invocation_record.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace comb::storage {

struct log_record {
  enum class kind_t : uint8_t { invocation = 0, message = 1 };
  uint64_t lsn = 0;
  int64_t timestamp_ns = 0;
  kind_t kind = kind_t::message;
  std::string sender;
  std::string receiver;
  uint64_t execution_id = 0;
  uint64_t parent_id = 0;
  std::string procedure;
  std::string role;
  std::string status;
  /// Message payload; for invocations the arguments as JSON text.
  std::string payload;
  // Invocations only.
  std::string result;
  bool read_only = false;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  uint32_t partition = 0;
  std::vector<row_change> changes;
  std::vector<row_read> reads;
  /// Only from decode_head: one byte per row change that the record announces but does not
  /// hold (see encode_committed), else empty.
  std::string row_flags;

  /// "invocation" or "message".
  std::string_view kind_name() const;
};

/// Builds the record of an invocation / a message (lsn left 0).
log_record to_log_record(const invocation_record& rec);
log_record to_log_record(const message_record& msg);

/// Encodes a record: its lsn as 8 little-endian bytes, then the record in format 2.
std::string encode(const log_record& r);

/// Encodes an invocation's / a message's record as encode(to_log_record(x)) would (lsn 0),
/// without the copy.
std::string encode(const invocation_record& rec);
std::string encode(const message_record& msg);

/// Encodes a record in format 1 (a flat Cap'n Proto LogRecord), as logs and WAL entries
/// written before format 2 hold it: for tests and tools that need such bytes. A record with
/// row_flags and no changes gives a format-1 WAL head.
std::string encode_v1(const log_record& r);

/// A committed invocation's record and its WAL head from one encoding, in one buffer: `buf`
/// keeps `front` bytes for the caller (as they were, or zero where it grows), then holds the
/// record as encode(rec) gives it (lsn 0). Returns the head's size: the head is buf's first
/// that many bytes, the `front` bytes then the record without its row changes, but with their
/// flag bytes (a prefix of the record). The head rides in the transaction's WAL entry, which
/// holds the rows already (as the transaction's writes); recovery rebuilds the changes from
/// the two. The record is buf.substr(front). `buf` keeps its capacity; nothing is copied.
size_t encode_committed(std::string& buf, const invocation_record& rec, size_t front = 0);

/// A row change's flag byte (LogRecord.rowFlags): bits 0-1 its op (1 insert, 2 update,
/// 3 delete), bit 2 is_row.
uint8_t row_flag(const row_change& c);

/// Sets c's op and is_row from a flag byte; false (c untouched) for a byte that is not one.
bool from_row_flag(uint8_t flag, row_change& c);

/// Sets the lsn of encoded record bytes in place (no re-encoding).
void set_lsn(std::string& encoded, uint64_t lsn);

/// The lsn of encoded record bytes (0 when they are too short to hold one).
uint64_t lsn_of(std::string_view encoded);

/// Decodes bytes made by encode(), encode_committed's record or encode_v1; errc::corrupt_data
/// (with what is wrong) otherwise. Safe on arbitrary input: it never reads out of bounds and limits
/// nesting and size.
caf::expected<log_record> decode(std::string_view bytes);

/// decode(), but also accepts a head from encode_committed (without its front): the record
/// then has no changes and row_flags announces them.
caf::expected<log_record> decode_head(std::string_view bytes);

} // namespace comb::storage
