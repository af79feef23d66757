// comb::storage::log_record: one provenance log record in memory, and its encoding (a Cap'n
// Proto LogRecord, schemas/log_record.capnp). Plain value type; functions are thread-safe.
#pragma once

#include "runtime/provenance_hook.hpp"

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
  std::vector<runtime::row_change> changes;
  std::vector<runtime::row_read> reads;

  /// "invocation" or "message".
  std::string_view kind_name() const;
};

/// Builds the record of an invocation / a message (lsn left 0).
log_record to_log_record(const runtime::invocation_record& rec);
log_record to_log_record(const runtime::message_record& msg);

/// Encodes a record: its lsn as 8 little-endian bytes, then a flat Cap'n Proto LogRecord.
std::string encode(const log_record& r);

/// Encodes an invocation's record as encode(to_log_record(rec)) would (lsn 0), without the
/// copy; with_rows = false leaves out its row changes and reads. The result starts with
/// `front` zero bytes (room for a caller's header) before the record's bytes.
std::string encode(const runtime::invocation_record& rec, bool with_rows = true,
                   size_t front = 0);

/// encode(rec, with_rows, front) into `out`, replacing what it held but keeping its capacity:
/// a caller that encodes record after record into one string allocates nothing per record.
void encode_into(std::string& out, const runtime::invocation_record& rec, bool with_rows = true,
                 size_t front = 0);

/// Sets the lsn of encoded record bytes in place (no re-encoding).
void set_lsn(std::string& encoded, uint64_t lsn);

/// The lsn of encoded record bytes (0 when they are too short to hold one).
uint64_t lsn_of(std::string_view encoded);

/// Decodes bytes made by encode(); errc::corrupt_data (with what is wrong) otherwise. Safe on
/// arbitrary input: it never reads out of bounds and limits nesting and size.
caf::expected<log_record> decode(std::string_view bytes);

} // namespace comb::storage
