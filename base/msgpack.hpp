// comb::append_msgpack: one MessagePack writer for rows (storage/transaction.cpp) and for
// provenance records' arguments and results (storage/log_record.cpp). It writes a value byte
// for byte as nlohmann::json::to_msgpack does, without its allocations (to_msgpack copies
// every object key into a JSON string and allocates an output adapter per call).
// Stateless and thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace comb {

/// Appends `value` to `out` as MessagePack: the same bytes as nlohmann::json::to_msgpack.
///
/// With `ascii_only`, refuses a value holding a string or object key with a byte outside
/// ASCII, a binary or discarded value, or a string or container of 2^32 or more bytes or
/// elements: it returns false, and `out` then ends with part of the value (the caller cuts it
/// back and writes the value another way, e.g. as JSON text, which checks UTF-8). Without it,
/// every value is written (the rare forms through nlohmann itself) and it returns true.
bool append_msgpack(std::string& out, const nlohmann::json& value, bool ascii_only = false);

} // namespace comb
