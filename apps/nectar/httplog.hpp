// comb::nectar::httplog stored procedures: the capture of HTTP requests into Comb tables and
// their live model labels. httplog.capture inserts a batch of captured requests (one row per
// request id; a retried batch inserts nothing twice) and, in the same transaction, enqueues
// outbox calls of at most 1 MiB to the active version of the anomaly model
// (runtime/pieces/outbox.hpp, the compute process's anomaly-detector runner); its result
// procedure httplog.labeled writes one labeled row per request. With no active version the
// requests wait in httplog_unlabeled (with the reason) until httplog.label_pending finds one.
// Tables:
//   httplog_request           request id -> the captured fields (nectar_spec: date, time,
//                             ts_ns, c_ip, cs_method, ..., raw, raw_encoding, truncated,
//                             execution_id, trace_id, rule_label, rule_ids, rule_score,
//                             labeled_from: "arrival" | "response", label_execution)
//   httplog_request_labeled   request id -> {request_id, score, label, threshold, model,
//                             model_version, rule_label, rule_ids, combined_label, call,
//                             labeled_ns} (score and label null, and "error", when scoring
//                             failed three times)
//   httplog_unlabeled         request id -> {reason, attempts}: waiting for a label
#pragma once

#include "runtime/procedure_registry.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace comb::nectar {

inline constexpr const char* request_table = "httplog_request";
inline constexpr const char* labeled_table = "httplog_request_labeled";
inline constexpr const char* unlabeled_table = "httplog_unlabeled";

/// Request bytes the model gets of one request (it reads at most its sequence length of
/// tokens; the row keeps up to 1 MiB).
inline constexpr size_t model_text_bytes = 16 * 1024;

/// The part of a raw request (as httplog_request's raw holds it) that the model scores: the
/// request without its Host and X-Nectar-Trace header lines. The trace id is the traffic
/// generator's marker (a model could learn it, or leak it into a score) and Host names the
/// deployment, not the request; the row keeps both.
std::string model_input(std::string_view raw);

/// The bytes the model scores of an httplog_request row: model_input of its raw request
/// (decoded when base64), cut at model_text_bytes.
std::string model_text(const nlohmann::json& row);

/// Registers, for `roles`:
///   httplog.capture       {batch, requests: [{id, <fields>, label_sent?}...], labels?:
///                         [{id, text, rule_label, rule_ids}...], model?, threshold?} ->
///                         {inserted, duplicates, enqueued, unlabeled, labels_enqueued,
///                         reason?}; model "" or absent: no model labels (rows only).
///                         `labels`: model calls for requests that arrived and were not
///                         answered yet (capture at arrival), all enqueued or, with no
///                         active version, none (labels_enqueued 0); their rows come in a
///                         later call with label_sent true (no second label). A retried
///                         call whose first try committed enqueues its labels twice: the
///                         labeled row is written twice, under the same key
///   httplog.label_pending {model, threshold?, limit?} -> {enqueued, waiting, failed,
///                         reason?}
///   httplog.labeled       result procedure of the model calls
///   httplog.rows          {table: "request" | "labeled" | "unlabeled", after?, limit?}
///                         -> {rows: [{id, ...}], last}   (read-only)
///   httplog.count         {} -> {requests, labeled, unlabeled}   (read-only)
void register_httplog(runtime::procedure_registry& procs,
                      std::vector<std::string> roles = {"admin", "nectar"});

} // namespace comb::nectar
