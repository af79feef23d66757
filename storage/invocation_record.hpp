// comb::storage invocation records: what one stored-procedure invocation did (its row
// changes and reads) and the messages between actors, as provenance records them. The
// provenance log's format (storage/log_record.hpp) encodes them; transactions collect the row
// changes and reads as they run. Plain value types.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace comb::storage {

/// One row change made by a transaction, in the order the transaction made it.
struct row_change {
  enum class op : uint8_t { insert = 1, update = 2, del = 3 };
  std::string table;
  std::string key;
  op kind = op::insert;
  /// True when `value` is a JSON row encoded as MessagePack (written with put_row); decode
  /// it with nlohmann::json::from_msgpack. False for raw bytes (e.g. model chunks).
  bool is_row = true;
  /// The new value as stored (empty for del).
  std::string value;
};

/// One row read by a transaction (recorded only when the config asks for reads).
struct row_read {
  std::string table;
  std::string key;
};

/// Everything known about one stored-procedure invocation.
struct invocation_record {
  uint64_t execution_id = 0;
  uint64_t parent_id = 0;
  std::string procedure;
  std::string role;
  /// Arguments as JSON text, or as the marker byte 0xc1 and MessagePack (the state actor's
  /// form; storage/record_value.hpp); a decoded record gives JSON text either way. Replay
  /// re-executes the procedure with exactly these.
  std::string args;
  /// Result as JSON text (or 0xc1 and MessagePack, as args) on success, the error text
  /// otherwise.
  std::string result;
  /// "ok" or the comb::errc name of the failure.
  std::string status;
  bool read_only = false;
  uint32_t partition = 0;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  std::string sender;
  std::string receiver;
  std::vector<row_change> changes;
  std::vector<row_read> reads;
};

/// A message between Comb actors (invocation, reply, function call, piece, result).
struct message_record {
  std::string kind;
  std::string sender;
  std::string receiver;
  uint64_t execution_id = 0;
  uint64_t parent_id = 0;
  std::string procedure;
  std::string role;
  std::string status;
  int64_t timestamp_ns = 0;
  std::string payload;
};

} // namespace comb::storage
