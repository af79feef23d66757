// comb::storage record values: an invocation record's arguments and result as the state actor
// writes them (invocation_record::args / ::result). Either JSON text, or, without producing
// any text, the marker byte 0xc1 (never the first byte of JSON text, nor of MessagePack: it
// is unused there) followed by the value as MessagePack. The log record's format 2 stores
// the MessagePack as it is, behind a flag bit (storage/log_record.cpp), and decode() gives
// readers the JSON text, byte for byte what json_text() makes of the value. Functions are
// thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace comb::storage {

/// The marker byte in front of a MessagePack record value.
inline constexpr char record_msgpack_marker = '\xc1';

/// True when `field` holds the marker and MessagePack (append_record_value's first form).
inline bool is_msgpack_value(std::string_view field) {
  return !field.empty() && field.front() == record_msgpack_marker;
}

/// Appends `value` to `out` as the marker and its MessagePack, or, for a value holding a
/// string with a byte outside ASCII (json_text validates UTF-8 and would refuse invalid
/// text), binary or discarded values, as JSON text (comb::append_json_text, which throws as
/// it does).
void append_record_value(std::string& out, const nlohmann::json& value);

/// A record value as JSON text: `field` itself when it is JSON text, else the JSON text of
/// its MessagePack (what comb::json_text gives for the value). nullopt when the MessagePack
/// is malformed or nested deeper than 256 levels.
std::optional<std::string> record_value_text(std::string_view field);

} // namespace comb::storage
