// comb::anomaly stored procedures: HTTP requests scored by a detector served from the model
// store. anomaly.score stores the requests and, in the same transaction, enqueues one infer
// call to the compute process pinned to the model's active version (runtime/pieces/outbox.hpp);
// its result procedure anomaly.scored writes one score row per request; anomaly.results reads
// them back. Tables:
//   anomaly_requests  "<execution>.<index>" -> {raw (text, or bytes when not UTF-8), source,
//                     received_ns (the execution's time), call}
//   anomaly_scores    "<execution>.<index>" -> {score, label ("anomalous" | "normal"),
//                     parsed, model, version, digest, call}
//   anomaly_calls     "<call>" -> {execution, count, model, version, digest, threshold,
//                     status ("pending" | "scored" | "failed"), error}
// <execution> is the scoring execution's id as 16 hex digits, <index> the request's place in
// the call as 8 decimal digits. The procedures are plain functions over a transaction.
#pragma once

#include "runtime/procedure_registry.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace comb::anomaly {

/// The most request bytes one anomaly.score call carries: its "requests" tensor (each request
/// plus a 4-byte length). Larger sets are sent as several calls (`comb anomaly score --node`
/// does).
constexpr size_t max_call_bytes = size_t{1} << 20;

/// Registers, for `roles`:
///   anomaly.score   {requests: [text...], model: NAME, source?: text, threshold?: number
///                   (default: the model file's saved threshold, 0.5 for older files),
///                   encoding?: "text" | "base64" (each request base64-encoded, for
///                   requests that are not UTF-8)}
///                   -> {call, execution, count, model, version, digest}
///   anomaly.scored  the result procedure of its calls (writes anomaly_scores)
///   anomaly.results {call} | {ids: [...]}
///                   -> {scores: [{id, score, label, parsed, model, version, digest, call}],
///                      pending: [ids without a score yet], status?, error? (for a call)}
void register_anomaly(runtime::procedure_registry& procs,
                      std::vector<std::string> roles = {"admin"});

/// True when `s` is well-formed UTF-8 (JSON text can carry it as a string as it is).
bool is_utf8(std::string_view s);

/// The id of request `index` of execution `execution_id` ("<16 hex>.<8 digits>").
std::string request_id(uint64_t execution_id, size_t index);

} // namespace comb::anomaly
