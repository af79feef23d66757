// comb::anomaly payload sets: the project's attack payload lists and benign value sets
// (apps/anomaly/payloads/{attacks,benign}/<name>.txt, format in its README.md), how a line is
// encoded into a request parameter, and requests made by putting lines into CSIC's normal
// requests (training data beyond CSIC, calibration, the --ood evaluation). Plain values and
// stateless functions; thread-safe.
#pragma once

#include "apps/anomaly/csic_dataset.hpp"
#include "apps/anomaly/http_request.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace comb::anomaly {

/// One file of a payload directory: its name (file name without .txt) and its lines.
struct payload_set {
  std::string name;
  /// True for attacks/<name>.txt, false for benign/<name>.txt.
  bool attack = false;
  std::vector<std::string> lines;
};

/// The sets of a directory in the payloads layout, each kind sorted by name.
struct payload_dir {
  std::vector<payload_set> attacks;
  std::vector<payload_set> benign;
};

/// `<repo>/apps/anomaly/payloads`, the project's own sets.
std::string default_payload_dir(const std::string& repo_root);

/// Reads `dir`/attacks/*.txt and `dir`/benign/*.txt: one value per line, '#' lines and blank
/// lines skipped, a trailing CR removed. Errors: errc::not_found when `dir` has neither
/// folder or no file in them, errc::invalid_argument naming a file that cannot be read.
caf::expected<payload_dir> load_payload_dir(const std::string& dir);

/// The wire form of a line put into a query or form parameter (README.md, "Encoding"): a
/// line holding a valid %XX escape is taken as already URL-encoded and sent as written but
/// for space, '&', '#' and bytes >= 0x80 (as %XX); any other line is form-encoded as a
/// browser does (space as '+', all but A-Za-z0-9*-._ as %XX of its bytes).
std::string encode_payload(std::string_view line);

/// Which part of the work a line serves, by a stable hash of its text: 60% train, 20%
/// calibration (choosing the threshold), 20% test (figures).
enum class line_use { train, calibration, test };
line_use use_of(std::string_view line);
const char* to_string(line_use u);

/// True when `s` (UTF-8) holds a letter of a script other than Latin (a code point at or
/// above U+0370: Greek, Cyrillic, Arabic, Hebrew, CJK, Indic, Thai, Georgian, ...).
bool has_non_latin(std::string_view s);

/// Copy of `base` with `wire` (an encode_payload result) put into one of its parameters
/// (query or form body), chosen at random: its value replaced (70%) or `wire` appended to it.
/// A request without parameters gets a query parameter of a common name. Content-Length
/// follows a changed body.
http_request inject_value(const http_request& base, std::string_view wire, std::mt19937_64& rng);

/// The request as raw HTTP/1.1 text (request line, header lines, blank line, body), CRLF.
std::string render_http(const http_request& r);

/// Requests made from sets: each kept line of each set put into a request drawn from
/// `bases` (seeded), labeled 1 for attacks and 0 for benign sets.
struct injected_request {
  labeled_request request;
  /// Index of the set in the `sets` given.
  size_t set = 0;
  /// The line as it was in the file.
  std::string line;
};

struct injection_options {
  /// Lines used: those whose use_of is in `uses` (all when empty).
  std::vector<line_use> uses;
  /// At most this many lines of each set (evenly drawn, seeded), 0 = all.
  size_t per_set = 0;
  /// Each kept line is injected this many times (into different base requests).
  int copies = 1;
  uint64_t seed = 1;
};

/// Errors: errc::invalid_argument when `bases` is empty.
caf::expected<std::vector<injected_request>> inject_sets(
  const std::vector<const http_request*>& bases, const std::vector<payload_set>& sets,
  const injection_options& opts);

} // namespace comb::anomaly
