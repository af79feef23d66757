// comb::runtime large values in provenance: an invocation's arguments (or a message's payload)
// larger than a threshold are logged with each of their long strings that the transaction
// stored in a blobs table (or all of them, for a failed call, which replay skips) replaced by
// its SHA-256 digest and size, {"$comb_elided": {"sha256": ..., "size": N, "base64": true}}, instead of
// the bytes: a model chunk is stored once, in the model store, not again in the WAL entry, the
// log, and the SQL store. A base64 string (a chunk's "data") is digested as its decoded
// bytes, so the record names the same digest as the bytes stored in the database; replay
// takes them back from the source database's blobs tables by digest and size
// (restore_elided). Arguments kept elsewhere in another form (decoded images) stay whole.
// Large row values a transaction wrote, and large message payloads, are logged the same way
// (elide_row_value; messages are not replayed, and replay compares rows by digest). Free
// functions; thread-safe.
#pragma once

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace comb::runtime {

/// The key of a value logged as its digest.
constexpr const char* elided_key = "$comb_elided";

/// Strings shorter than this are kept even in large arguments (names, keys, small fields).
constexpr size_t elide_min_string = 1024;

/// Says whether the database holds `bytes` where replay can find them again by digest.
using stored_check = std::function<bool(std::string_view bytes)>;

/// When `json_text` is longer than `threshold` and is JSON, the text with every string of at
/// least elide_min_string bytes replaced by its digest and size (see above); with `stored`,
/// only the strings whose bytes it accepts (the transaction wrote them to a blobs table), so
/// that replay finds them. nullopt when the text is kept as it is.
std::optional<std::string> elide_large_values(std::string_view json_text, size_t threshold,
                                              const stored_check& stored = {});

/// A row value a transaction wrote (MessagePack when `is_row`, else raw bytes) as provenance
/// logs it when it is longer than `threshold`: a row's strings and bytes of at least
/// elide_min_string replaced by digest and size (its other fields kept), or, for raw bytes
/// or a row with no such field, the MessagePack of {"$comb_elided": {"sha256", "size",
/// "whole": true}}. Replay re-executes the transaction and compares what it wrote with
/// same_elided_value, so it needs no bytes back. nullopt when the value is logged whole.
std::optional<std::string> elide_row_value(std::string_view value, bool is_row, size_t threshold);

/// True when `logged` is what elide_row_value made of `value` (whatever its threshold was).
bool same_elided_value(std::string_view value, bool is_row, std::string_view logged);

/// True when `args` holds a value logged as its digest.
bool has_elided(const nlohmann::json& args);

/// Finds the bytes of an elided value: given its SHA-256 (hex) and size, the bytes, or an
/// error saying why they are not to be had.
using elided_source =
  std::function<caf::expected<std::string>(const std::string& sha256, uint64_t size)>;

/// Replaces every elided value in `args` by the bytes `source` gives (base64-encoded again
/// when the original was), checking their digest and size. Errors name the digest, the size
/// and the argument that could not be restored.
caf::error restore_elided(nlohmann::json& args, const elided_source& source);

} // namespace comb::runtime
