// comb::anomaly::http_request: one HTTP request split into request line, header fields and
// body, plus the rendering of a request as the detector's input text (the paper's form:
// method, URL, version, header fields, body, separated by spaces). Plain value type; the free
// functions are stateless and thread-safe. Text is bytes (Latin-1 in CSIC 2010), never UTF-8.
#pragma once

#include <caf/expected.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace comb::anomaly {

/// Largest raw request `parse_http_request` accepts (bytes); larger input is an error.
inline constexpr size_t max_request_bytes = size_t{1} << 20;

/// One HTTP request: request line, header fields in arrival order, body.
struct http_request {
  std::string method;
  std::string url;
  std::string version;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

/// How a request becomes the model's input text (ablations switch parts off).
struct text_options {
  /// Cookie handling: keep the value, keep the field name only, or drop the field.
  enum class cookie_mode { keep, name_only, drop };
  /// Default drops the Cookie value: CSIC's JSESSIONID values identify sessions, which
  /// correlate with the label without saying anything about the request.
  cookie_mode cookie = cookie_mode::name_only;
  /// Sort header fields by name (case-insensitive) so that their order carries no signal.
  bool sort_headers = false;
  /// Leave header fields out entirely (method, URL, version and body only).
  bool drop_headers = false;
  /// Write every decimal digit as '0', except the two hex digits of a %XX escape (which
  /// name a character). CSIC's subtler anomalies are values of the wrong shape (a letter in
  /// a card number or postcode, a DNI with two letters); with digits folded the model sees
  /// the shape instead of thousands of distinct random numbers. Protocol-1 fold 1: F1 0.9902
  /// -> 0.9935 (false positives 21 -> 11, missed anomalies 77 -> 54).
  bool zero_digits = true;
  /// Write the letters of parameter values (query string and body, between '=' and '&') as
  /// 'a' / 'A', keeping their case class, except in %XX escapes. Names, keys and paths keep
  /// their letters; a value keeps its shape (a DNI is 00000000A, two letters in it are not),
  /// and its punctuation and escapes. Protocol-1 fold 1, with zero_digits: F1 0.9935 ->
  /// 0.9976 (missed anomalies 54 -> 14).
  bool fold_value_letters = true;
  /// Decode what attackers encode before the folds, as CRS's transformations do (issue 22):
  /// in the path, percent escapes (repeated while they change something, at most 3 rounds,
  /// %uXXXX too); in each parameter value, '+' as space, then percent escapes, HTML entities
  /// (&lt; &#60; &#x3C; with or without ';') and JavaScript escapes (\uXXXX, \xXX), repeated
  /// likewise. A value that needed more than one round (double encoding) keeps a "%25" mark
  /// in front. With fold_value_letters, a decoded value's code points beyond ASCII are each
  /// folded to 'a' (UTF-8 from browsers, Latin-1 bytes from CSIC alike): a name in Greek,
  /// Thai or Japanese has the shape of a name, not of a run of %XX escapes. Off in files
  /// written before it existed (they saw escapes as they are).
  bool decode = false;
  /// With fold_value_letters: a run of letters (and '_') of a value that is a keyword of
  /// the compiled-in list of this version (apps/anomaly/keywords.hpp) is kept, lowercased,
  /// instead of folded, so that `<script>` keeps `script` and `system('whoami')` keeps both
  /// words. 0 = no keywords (files written before it existed).
  int keywords = 0;
  /// With decode or keywords: a header value that is an absolute http(s) URL (Referer,
  /// Origin) is written as the request's URL is: path decoded, query values folded. Without
  /// it a Referer's query (a site search with raw spaces, say) keeps its letters, which the
  /// model, having seen them folded everywhere else, took for an anomaly (issue 22: 47 of
  /// 52 flagged benign Nectar requests). Off in files written before it existed.
  bool header_urls = false;
  /// With decode: a value (or path) that percent, entity or JavaScript decoding changed is
  /// followed by its original, after a '\x1f' mark, written as the text before decoding
  /// wrote values: letters a/A and digits 0 except in %XX escapes, whose hex digits stay,
  /// no keywords kept; a non-ASCII code point is 'a' as in the decoded view. The decoded view
  /// keeps the words attackers hide; the original keeps what decoding erases, such as a
  /// character left raw where a browser would have escaped it, or `%2C` against `,`
  /// (CSIC's anomalous class includes malformed and oddly encoded values). Off in files
  /// written before it existed.
  bool originals = false;
};

/// Parses one raw request: a request line "METHOD URL VERSION", header lines "Name: value"
/// up to the first empty line, then the body (remaining lines, joined by "\n", trailing
/// line ends removed). Accepts CRLF and LF line ends. Errors (errc::invalid_argument) name
/// the problem: empty input, a request line that is not "METHOD URL [VERSION]", a method
/// that is not an HTTP token, a URL that is neither a path nor "scheme://...", a header line without ':'; errc::too_large above
/// `max_request_bytes`.
caf::expected<http_request> parse_http_request(std::string_view raw);

/// Renders `r` as one line: "METHOD URL VERSION Name: value ... body", fields separated by
/// single spaces, with `opts` applied. Line breaks inside the body stay as they are.
std::string to_model_text(const http_request& r, const text_options& opts = {});

/// One parameter value as text_options::decode and the keyword-preserving fold make it
/// (what to_model_text writes for each value when decode is on). Exposed for tests.
std::string fold_value(std::string_view raw_value, const text_options& opts);

/// Splits a stream of raw requests (a file or stdin for scoring) into units: a unit starts
/// at each line that looks like a request line ("TOKEN /..." or "TOKEN scheme://...") and
/// runs to the next one. Non-empty text before the first request line is a unit of its own
/// (it will not parse as HTTP). Blank-only input gives no units.
std::vector<std::string_view> split_http_stream(std::string_view text);

/// Parses `raw` and renders it; a request that does not parse is rendered as the raw bytes
/// themselves so that scoring always has an input (`ok` set to false in that case).
std::string to_model_text_lenient(std::string_view raw, const text_options& opts,
                                  bool* ok = nullptr);

} // namespace comb::anomaly
