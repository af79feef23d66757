// comb::nectar rules worker: CRS (apps/anomaly/crs_engine.hpp) in a process of its own, one
// request at a time, under a CPU budget (in a child forked with CRS loaded, replaced by a new
// fork when it overruns). `comb nectar rules-worker` runs run_rules_worker on
// the socket a rules_pool (rules_pool.hpp) gave it as fd 3; the pool kills and replaces a
// worker that overruns its budget or dies, so that no request holds a server thread or a core
// for longer than the budget (CRS 3.3.4's rule 941160 backtracks for seconds to minutes on
// long runs of '<', and libmodsecurity 3.0.9 with PCRE2's JIT ignores SecPcreMatchLimit).
// The frames on the socket are defined here: both sides use these functions. Single-threaded.
#pragma once

#include "apps/anomaly/http_request.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace comb::nectar {

/// Exit status of a worker whose CPU budget ran out while CRS ran.
inline constexpr int rules_timed_out_exit = 86;

/// How a worker sets up CRS.
struct rules_worker_options {
  int paranoia = 1;
  /// CPU time CRS may take for one request; past it the worker exits (rules_timed_out_exit).
  std::chrono::milliseconds cpu_budget{250};
};

/// What a worker sends: once, when CRS is loaded (ready, with its name) or could not be
/// (error, with why); then one reply per request: its verdict, or timed_out / crashed when
/// the forked process that ran CRS on it overran its budget or died (a fresh fork takes the
/// next request).
struct rules_reply {
  enum class kind : uint8_t { ready = 0, verdict = 1, error = 2, timed_out = 3, crashed = 4 };
  kind what = kind::verdict;
  std::string text; ///< ready: CRS's name; error, timed_out, crashed: what happened
  bool flagged = false;
  int score = 0;
  uint64_t cpu_ns = 0; ///< CPU time CRS took for the request (the worker's thread)
  std::vector<int> rules;
};

/// A frame's payload: a request for a worker, a reply for the pool.
std::string encode_request(const anomaly::http_request& r);
std::optional<anomaly::http_request> decode_request(const std::string& payload);
std::string encode_reply(const rules_reply& r);
std::optional<rules_reply> decode_reply(const std::string& payload);

/// Writes one frame (4-byte little-endian length, payload) to `fd`; false when the peer is
/// gone. Never raises SIGPIPE.
bool write_frame(int fd, const std::string& payload);

/// Reads one frame from `fd`, waiting until `deadline` (none: without end). nullopt on end of
/// file, an error, a frame over 64 MiB, or the deadline (then `timed_out` is set).
std::optional<std::string> read_frame(
  int fd, std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt,
  bool* timed_out = nullptr);

/// The worker's loop on `fd`: loads CRS, answers ready (or error, then returns 2), then one
/// reply per request until end of file (returns 0). CRS runs in a process forked from this
/// one; a request whose CRS run takes more than the CPU budget ends that process
/// (rules_timed_out_exit), this one answers timed_out and forks another.
int run_rules_worker(int fd, const rules_worker_options& opts);

} // namespace comb::nectar
