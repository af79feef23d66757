// comb::nectar traffic generator: an HTTP client that drives a Nectar server open-loop at a
// given rate with benign browser sessions (register, log in, feed, profiles, posts, follows,
// searches) mixed with attacks (SQL injection, XSS, path traversal, command injection, scanner
// probes, CRLF, oversized values) put where a real attacker puts them (query parameters, form
// fields, paths, headers, cookies). Every request carries `X-Nectar-Trace: <id>`, and a truth
// record (JSON line) says what it really was, so that `comb nectar report` can score the
// labels the server's capture gave it. Payloads come from the project's lists
// (apps/anomaly/payloads/attacks/<family>.txt, benign/<kind>.txt). run_traffic blocks its
// caller and runs its own threads; the types are plain values.
#pragma once

#include <caf/expected.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace comb::nectar {

/// The values the generator draws from: attack payloads by family and benign values by kind,
/// one value a line (UTF-8, '#' starts a comment line, blank lines skipped).
struct payload_lists {
  std::map<std::string, std::vector<std::string>> attacks;
  std::map<std::string, std::vector<std::string>> benign;

  /// Reads `dir`/attacks/*.txt and `dir`/benign/*.txt. A missing folder, or one without any
  /// attack list, is a bad_config error naming it; benign kinds that are missing fall back to
  /// the generator's own lists of names and texts.
  static caf::expected<payload_lists> load(const std::string& dir);
};

/// The payload folder of this source tree (apps/anomaly/payloads), or "" when unknown.
std::string default_payload_dir();

struct traffic_options {
  /// HOST:PORT of the Nectar server.
  std::string target = "127.0.0.1:8080";
  /// Requests per second, started on schedule whether or not earlier ones were answered.
  double rate = 20;
  /// Seconds of sending.
  double duration_s = 10;
  /// Fraction of requests that are attacks, in [0, 1].
  double attack_share = 0.2;
  uint64_t seed = 1;
  /// JSON-lines truth file ("" for none).
  std::string truth_file;
  /// Payload folder (default_payload_dir() when empty).
  std::string payload_dir;
  /// Client threads, each with its own keep-alive connection.
  uint32_t connections = 8;
  /// Targets off the loopback interface are refused unless this is set.
  bool allow_remote = false;
  /// After the last scheduled send, how long requests still queued may wait to be sent.
  double drain_s = 10;
  /// Seconds a request may wait for its response.
  double timeout_s = 10;
  /// Before the clock starts, every simulated browser registers (closed loop, `connections`
  /// at a time), so that the timed traffic comes from users already logged in, as a social
  /// network's traffic mostly does (a 7-day session cookie); without it the first minutes
  /// are a burst of registrations, each a scrypt hash on the server. The warm-up requests are
  /// in the truth file (the server captures them) but not in the stats' counts and rates.
  bool log_in_first = false;
  /// Called once on the calling thread when the clock starts (after the warm-up, before
  /// the first timed request), e.g. to sample the CPU the timed traffic costs.
  std::function<void()> on_clock_start;
};

/// What one request was: the truth record, written as one JSON line.
struct truth_record {
  std::string trace_id;
  /// "benign" or "attack".
  std::string cls;
  /// Attack family (the payload list's name); "" for benign requests.
  std::string family;
  /// Where the payload went: query, path, form:<field>, header:<name>, cookie; for benign
  /// requests the session step (register, login, feed, ...).
  std::string placement;
  std::string method;
  /// Path with query, cut at 512 bytes.
  std::string path;
  /// HTTP status of the response, 0 when none came.
  int status = 0;
  /// Wall-clock time (ns) the request was sent.
  int64_t sent_ns = 0;
  /// Bytes of the request line, headers and body as the generator built them.
  uint64_t bytes = 0;
  /// Sent by the warm-up (traffic_options::log_in_first), before the clock started.
  bool warmup = false;

  std::string to_json_line() const;
  /// Parses one truth line; a bad line gets an invalid_argument error.
  static caf::expected<truth_record> parse(const std::string& line);
};

struct traffic_stats {
  std::string run_id;
  uint64_t scheduled = 0;
  uint64_t sent = 0;
  /// Requests that got an HTTP response (any status).
  uint64_t answered = 0;
  uint64_t benign = 0;
  uint64_t attacks = 0;
  /// Scheduled requests never sent (still queued when the drain time ran out).
  uint64_t dropped = 0;
  /// Requests of the warm-up (traffic_options::log_in_first), in none of the other counts.
  uint64_t warmup = 0;
  std::map<std::string, uint64_t> by_family;
  std::map<int, uint64_t> by_status;
  /// From the first scheduled send to the last request sent.
  double seconds = 0;
  double achieved_rate = 0;
  /// From a request's scheduled time to its response (queueing included: open loop).
  double latency_p50_ms = 0;
  double latency_p99_ms = 0;
  /// The first few transport errors, rendered.
  std::vector<std::string> errors;
};

/// Called with every request once it is done (answered or failed), from the client threads.
using truth_observer = std::function<void(const truth_record&)>;

/// Runs the traffic. Errors: a target that is not HOST:PORT, a non-loopback target without
/// allow_remote, a rate, duration or share out of range, a truth file that cannot be written.
/// A server that does not answer is not an error: such requests are counted as not answered.
caf::expected<traffic_stats> run_traffic(const traffic_options& opts, const payload_lists& payloads,
                                         truth_observer observe = {});

/// Several lines for people: sent, answered, achieved rate, classes, families, statuses.
std::string to_string(const traffic_stats& s);

/// Percent-encodes `s` for a URL component (RFC 3986 unreserved characters stay). With
/// `keep_escapes`, a '%' that starts a valid %XX escape stays, as an attacker's pre-encoded
/// payload means it.
std::string url_encode(const std::string& s, bool keep_escapes = false);

/// The value of the hidden `csrf` input of an HTML page, or "" when there is none.
std::string find_csrf(const std::string& html);

} // namespace comb::nectar
