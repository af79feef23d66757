// comb::nectar report: scores the labels Nectar's capture gave the requests of a traffic run.
// It joins the generator's truth file (JSON lines, traffic.hpp) with the captured
// `httplog_request` rows (by their trace_id field) and the `httplog_request_labeled` rows
// (by request id) of a spooled SQL store, and gives precision, recall, F1 and false-positive
// rate of the rule label, the model label and their OR, overall and per attack family, with
// the count of requests answered but not captured or not labeled (both must be 0), and the
// labeling lag (request arrival to the labeled row's commit), split into the stages of the
// pipeline. A request the HTTP parser refused before it read the header block (414, a 400 for
// an over-long header or cookie) is captured without its headers, so without its trace id:
// such a row is matched to its truth line by status, method, target and time instead (see
// make_report). The rows are read from the store's row_events (the JSON of every row change,
// last change of a row wins), which every spooled store has; the stage times from
// func_invocations and messages. Plain functions and value types; thread-compatible.
#pragma once

#include "apps/anomaly/binary_metrics.hpp"
#include "apps/nectar/traffic.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace comb::storage {
class sql_store;
}

namespace comb::nectar {

/// The three labels scored side by side.
struct label_scores {
  anomaly::binary_metrics rule;
  anomaly::binary_metrics model;
  /// rule OR model.
  anomaly::binary_metrics either;
};

/// One stage of the labeling lag, over the labeled requests whose times the store holds.
struct lag_stage {
  /// What the stage covers, e.g. "capture queue (response -> httplog.capture starts)".
  std::string name;
  uint64_t count = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double mean_ms = 0;
};

/// fp / (fp + tn); 0 when there are no negatives.
double fp_rate(const anomaly::binary_metrics& m);

struct nectar_report {
  /// Truth lines read, and of them: answered by the server (status > 0).
  uint64_t requests = 0;
  uint64_t answered = 0;
  uint64_t benign = 0;
  uint64_t attacks = 0;
  /// Answered requests with a captured row, and with a labeled row.
  uint64_t captured = 0;
  /// Of `captured`: rows without a trace id (the parser refused the request before reading
  /// its headers) matched to their truth line by status, method, target and time.
  uint64_t matched_without_trace = 0;
  /// Rows without a trace id that no truth line took: other clients, or the rest of a
  /// refused header block that the parser read as another request line.
  uint64_t untraced_unmatched = 0;
  uint64_t labeled = 0;
  /// Answered but without a captured row; captured but without a labeled row. Both must be 0.
  uint64_t not_captured = 0;
  uint64_t not_labeled = 0;
  /// Labeled requests whose rule label is not CRS's verdict: CRS ran past its time budget
  /// (rule_ids "timed out") or its worker died ("crashed"); both count as flagged. By truth
  /// class: attacks and benign requests.
  uint64_t rules_timed_out_attacks = 0;
  uint64_t rules_timed_out_benign = 0;
  uint64_t rules_crashed = 0;
  /// ... or its client's budget of slow CRS time was spent ("budget exhausted": CRS not run),
  /// by truth class.
  uint64_t rules_budget_attacks = 0;
  uint64_t rules_budget_benign = 0;
  /// The statuses of the requests not captured (400 and 414 from the HTTP parser tell of
  /// requests refused before a handler saw them: an over-long header or request line; their
  /// rows, if any, carry no trace_id to join by).
  std::map<int, uint64_t> not_captured_by_status;
  /// Requests not answered that were captured all the same (the server got them, the client
  /// gave up first).
  uint64_t unanswered_captured = 0;
  /// Captured rows whose trace id no truth line has (other traffic, another run).
  uint64_t captured_without_truth = 0;
  /// The trace ids of the first few requests not captured / not labeled, for the reader.
  std::vector<std::string> missing_examples;
  /// Over every labeled request of the run.
  label_scores all;
  /// Benign requests and the attacks of one family.
  std::map<std::string, label_scores> by_family;
  /// Labeling lag in ms, request arrival (the captured row's ts_ns) to the commit of its
  /// labeled row, over the labeled requests that were not the generator's warm-up (its
  /// registrations come before the clock, in a burst); count 0 when the rows lack the times.
  uint64_t lag_count = 0;
  double lag_p50_ms = 0;
  double lag_p99_ms = 0;
  double lag_max_ms = 0;
  /// The same lag less the request's own time in the server (time_taken): what capture and
  /// labels add after the response was written (0 for a request labeled before it).
  double after_response_p50_ms = 0;
  double after_response_p99_ms = 0;
  /// Requests whose labeled row committed before their response was written (captured at
  /// arrival: their labels overlapped their handler).
  uint64_t labeled_before_response = 0;
  /// The lag counted from when the generator sent the request (the truth's sent_ns, the same
  /// wall clock on loopback) instead of from the captured ts_ns, which the server takes when a
  /// thread starts routing the request: this one also holds the time the request waited for
  /// a server thread and was read. 0 when the truth has no send times.
  double lag_sent_p50_ms = 0;
  double lag_sent_p99_ms = 0;
  /// Labeled warm-up requests left out of the lag.
  uint64_t lag_warmup_excluded = 0;
  /// The lag split into the pipeline's stages, in order (their means add up to the mean lag
  /// over the requests that have every stage's times); empty when the store lacks them.
  std::vector<lag_stage> lag_stages;
};

/// Reads a truth file. Errors name the file and the line.
caf::expected<std::vector<truth_record>> read_truth(const std::string& file);

/// Computes the report from truth records and an open store. A truth line whose trace id no
/// row has is matched, if it was answered, to a row without a trace id of the same status,
/// method and target (a row without a method, as a 414 leaves it, matches on status alone),
/// logged at most 60 s after the request was sent and at most 1 s before: the earliest such
/// row goes to the earliest such request (rows with a method first). A store without any
/// captured row at all is an error naming what was looked for (the run was not spooled yet).
caf::expected<nectar_report> make_report(const std::vector<truth_record>& truth,
                                         storage::sql_store& store);

/// Opens `sql` (an SQLite file) read-only and reads `truth_file`, then make_report.
caf::expected<nectar_report> make_report(const std::string& sql, const std::string& truth_file);

/// A table for people: the three labels overall and per family, coverage and lag.
std::string to_string(const nectar_report& r);

} // namespace comb::nectar
