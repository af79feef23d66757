// comb::anomaly::crs_engine: the rule-based peer of the detector. Runs libmodsecurity3
// (Debian 3.0.9) with the OWASP Core Rule Set (Debian 3.3.4) in anomaly-scoring mode with
// the default inbound threshold; a request counts as flagged when CRS would block it (rule
// 949110 fires). Owns its ModSecurity instance and rule set. `evaluate` creates one
// transaction per request and may be called from several threads at once; creation is not
// thread-safe.
#pragma once

#include "apps/anomaly/http_request.hpp"

#include <caf/expected.hpp>

#include <memory>
#include <string>
#include <vector>

namespace comb::anomaly {

/// How CRS is set up.
struct crs_options {
  /// CRS paranoia level, 1..4.
  int paranoia = 1;
  /// Remove /accept-charset/ from tx.restricted_headers (rule 920450). Stock CRS 3.3.4 lists
  /// it, and every CSIC 2010 request carries Accept-Charset, so stock CRS flags everything.
  bool allow_accept_charset = false;
  /// Give ModSecurity the request-line target as it is (CSIC's are absolute,
  /// http://host:port/path?q) rather than cut to origin form: cutting hides some targets'
  /// suffixes from CRS, so the benchmarks pass it whole (docs/BENCHMARKING.md, CRS section).
  bool full_target = false;
  /// Folder of the CRS rule files (REQUEST-*.conf and their .data files).
  std::string rules_dir = "/usr/share/modsecurity-crs/rules";
  /// The CRS set-up file (SecDefaultAction, crs_setup_version).
  std::string setup_file = "/etc/modsecurity/crs/crs-setup.conf";
};

/// What CRS said about one request.
struct crs_verdict {
  /// CRS would block the request (inbound anomaly score at or above the threshold).
  bool flagged = false;
  /// Ids of the rules that matched and logged, in firing order (949110 included).
  std::vector<int> rules;
  /// CRS's inbound anomaly score of the request (tx.anomaly_score after phase 2).
  int score = 0;
};

class crs_engine {
public:
  ~crs_engine();
  crs_engine(const crs_engine&) = delete;
  crs_engine& operator=(const crs_engine&) = delete;

  /// Loads CRS as `opts` says. Errors: errc::not_found when the rule files are missing
  /// (install Debian's modsecurity-crs), errc::bad_config with ModSecurity's parser message.
  static caf::expected<std::unique_ptr<crs_engine>> create(const crs_options& opts);

  /// Runs the request through phases 1 and 2 (URI, headers, body). The absolute URL of
  /// CSIC's request line is given to ModSecurity in origin form (path and query), as a
  /// server receives it, the host staying in the Host header; or as it is, with full_target.
  crs_verdict evaluate(const http_request& r) const;

  /// Short description: "CRS 3.3.4 PL1 (stock)" or "... (accept-charset allowed)".
  std::string name() const;

private:
  crs_engine() = default;
  struct impl;
  std::unique_ptr<impl> impl_;
  crs_options opts_;
};

} // namespace comb::anomaly
