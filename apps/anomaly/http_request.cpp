// Parsing and rendering of single HTTP requests (see http_request.hpp).
#include "apps/anomaly/http_request.hpp"
#include "base/ascii.hpp"

#include "apps/anomaly/keywords.hpp"
#include "base/errc.hpp"

#include <algorithm>
#include <cstdint>

namespace comb::anomaly {

namespace {

bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  switch (c) {
  case '!':
  case '#':
  case '$':
  case '%':
  case '&':
  case '\'':
  case '*':
  case '+':
  case '-':
  case '.':
  case '^':
  case '_':
  case '`':
  case '|':
  case '~':
    return true;
  default:
    return false;
  }
}

/// Splits off the next line of `rest` (without its LF or CRLF end) and advances `rest`.
std::string_view next_line(std::string_view& rest) {
  auto pos = rest.find('\n');
  std::string_view line;
  if (pos == std::string_view::npos) {
    line = rest;
    rest = {};
  } else {
    line = rest.substr(0, pos);
    rest.remove_prefix(pos + 1);
  }
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  return line;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty()
         && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

std::string printable_prefix(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 40))
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  if (s.size() > 40)
    out += "...";
  return out;
}

} // namespace

caf::expected<http_request> parse_http_request(std::string_view raw) {
  if (raw.size() > max_request_bytes)
    return make_error(errc::too_large, "HTTP request of " + std::to_string(raw.size())
                                         + " bytes exceeds the limit of "
                                         + std::to_string(max_request_bytes) + " bytes");
  // Skip blank lines before the request line.
  std::string_view rest = raw;
  std::string_view line;
  do {
    if (rest.empty())
      return make_error(errc::invalid_argument, "empty HTTP request: no request line");
    line = next_line(rest);
  } while (trim(line).empty());
  line = trim(line);
  http_request r;
  auto sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0)
    return make_error(errc::invalid_argument, "HTTP request line is not 'METHOD URL [VERSION]': '"
                                                + printable_prefix(line) + "'");
  auto method = line.substr(0, sp);
  for (unsigned char c : method)
    if (!is_tchar(c))
      return make_error(errc::invalid_argument, "HTTP method contains a byte that is not a "
                                                "token character: '"
                                                  + printable_prefix(method) + "'");
  auto target = trim(line.substr(sp + 1));
  if (target.empty())
    return make_error(errc::invalid_argument,
                      "HTTP request line has no URL: '" + printable_prefix(line) + "'");
  r.method.assign(method);
  auto last = target.rfind(' ');
  if (last != std::string_view::npos && target.substr(last + 1).starts_with("HTTP/")) {
    r.version.assign(target.substr(last + 1));
    target = trim(target.substr(0, last));
  }
  bool origin = target.front() == '/' || target == "*";
  auto scheme = target.find("://");
  bool absolute = scheme != std::string_view::npos && scheme > 0 && scheme < 10;
  if (!origin && !absolute)
    return make_error(errc::invalid_argument,
                      "HTTP request target is neither a path ('/...') nor an absolute URL "
                      "('scheme://...'): '"
                        + printable_prefix(target) + "'");
  r.url.assign(target);
  // Header fields up to the first empty line.
  size_t line_no = 1;
  while (!rest.empty()) {
    line = next_line(rest);
    ++line_no;
    if (line.empty())
      break;
    if (line.front() == ' ' || line.front() == '\t') {
      // Obsolete line folding: continues the previous field's value.
      if (r.headers.empty())
        return make_error(errc::invalid_argument,
                          "HTTP header continuation line before any header field (line "
                            + std::to_string(line_no) + ")");
      r.headers.back().second += ' ';
      r.headers.back().second.append(trim(line));
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return make_error(errc::invalid_argument, "HTTP header line " + std::to_string(line_no)
                                                  + " is not 'Name: value': '"
                                                  + printable_prefix(line) + "'");
    r.headers.emplace_back(std::string{trim(line.substr(0, colon))},
                           std::string{trim(line.substr(colon + 1))});
  }
  // Body: the remaining lines, trailing blank lines removed.
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r'))
    rest.remove_suffix(1);
  r.body.reserve(rest.size());
  while (!rest.empty()) {
    auto l = next_line(rest);
    if (!r.body.empty())
      r.body += '\n';
    r.body.append(l);
  }
  return r;
}

namespace {

// True when a %XX escape starts at s[i]; the folds below leave its hex digits alone, since
// they name a character.
bool escape_at(const std::string& s, size_t i) {
  return s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1]))
         && std::isxdigit(static_cast<unsigned char>(s[i + 2]));
}

// text_options::zero_digits.
void fold_digits(std::string& out) {
  for (size_t i = 0; i < out.size(); ++i) {
    if (escape_at(out, i))
      i += 2;
    else if (out[i] >= '1' && out[i] <= '9')
      out[i] = '0';
  }
}

// text_options::fold_value_letters on `s` from `from` on.
void fold_value_letters(std::string& s, size_t from) {
  bool in_value = false;
  for (size_t i = from; i < s.size(); ++i) {
    char c = s[i];
    if (c == '=') {
      in_value = true;
    } else if (c == '&' || c == ' ') {
      in_value = false;
    } else if (in_value) {
      if (escape_at(s, i))
        i += 2;
      else if (c >= 'b' && c <= 'z')
        s[i] = 'a';
      else if (c >= 'B' && c <= 'Z')
        s[i] = 'A';
    }
  }
}

// --- decoding (text_options::decode) --------------------------------------------------------

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// Parses `n` hex digits of s at i; -1 when they are not all hex.
long hex_at(std::string_view s, size_t i, size_t n) {
  if (i + n > s.size())
    return -1;
  long v = 0;
  for (size_t k = 0; k < n; ++k) {
    int h = hex_value(s[i + k]);
    if (h < 0)
      return -1;
    v = v * 16 + h;
  }
  return v;
}

void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x110000) {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// %XX and %uXXXX (IIS's form, CRS t:urlDecodeUni). True when something was decoded.
bool percent_decode(std::string& s) {
  if (s.find('%') == std::string::npos)
    return false;
  std::string out;
  out.reserve(s.size());
  bool changed = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 1 < s.size() && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
        if (auto v = hex_at(s, i + 2, 4); v >= 0) {
          put_utf8(out, static_cast<uint32_t>(v));
          i += 5;
          changed = true;
          continue;
        }
      } else if (auto v = hex_at(s, i + 1, 2); v >= 0) {
        out += static_cast<char>(v);
        i += 2;
        changed = true;
        continue;
      }
    }
    out += s[i];
  }
  s.swap(out);
  return changed;
}

// HTML character references: numeric (&#60; &#x3C;, ';' optional as browsers accept) and the
// named ones attacks use. True when something was decoded.
bool entity_decode(std::string& s) {
  if (s.find('&') == std::string::npos)
    return false;
  static const std::pair<std::string_view, std::string_view> named[] = {
    {"lt", "<"},     {"gt", ">"},     {"quot", "\""},    {"apos", "'"},  {"amp", "&"},
    {"nbsp", " "},   {"tab", "\t"},   {"newline", "\n"}, {"colon", ":"}, {"lpar", "("},
    {"rpar", ")"},   {"sol", "/"},    {"bsol", "\\"},    {"semi", ";"},  {"equals", "="},
    {"num", "#"},    {"excl", "!"},   {"grave", "`"},    {"lsqb", "["},  {"rsqb", "]"},
    {"lcub", "{"},   {"rcub", "}"},   {"period", "."},   {"comma", ","}, {"plus", "+"},
    {"percnt", "%"}, {"dollar", "$"}, {"ast", "*"},      {"quest", "?"}, {"vert", "|"}};
  std::string out;
  out.reserve(s.size());
  bool changed = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '&' && i + 2 < s.size()) {
      if (s[i + 1] == '#') {
        bool hexa = s[i + 2] == 'x' || s[i + 2] == 'X';
        size_t j = i + (hexa ? 3 : 2);
        uint32_t v = 0;
        size_t digits = 0;
        while (j < s.size() && digits < 8
               && (hexa ? hex_value(s[j]) >= 0 : (s[j] >= '0' && s[j] <= '9'))) {
          v = v * (hexa ? 16 : 10) + static_cast<uint32_t>(hex_value(s[j]));
          ++j;
          ++digits;
        }
        if (digits > 0 && v < 0x110000) {
          put_utf8(out, v);
          if (j < s.size() && s[j] == ';')
            ++j;
          i = j - 1;
          changed = true;
          continue;
        }
      } else {
        bool hit = false;
        for (auto& [name, text] : named) {
          auto rest = std::string_view{s}.substr(i + 1);
          if (rest.size() >= name.size()
              && std::equal(name.begin(), name.end(), rest.begin(),
                            [](char a, char b) { return a == ascii_lower(b); })) {
            out.append(text);
            i += name.size();
            if (i + 1 < s.size() && s[i + 1] == ';')
              ++i;
            hit = true;
            break;
          }
        }
        if (hit) {
          changed = true;
          continue;
        }
      }
    }
    out += s[i];
  }
  s.swap(out);
  return changed;
}

// JavaScript escapes \uXXXX and \xXX (CRS t:jsDecode). True when something was decoded.
bool js_decode(std::string& s) {
  if (s.find('\\') == std::string::npos)
    return false;
  std::string out;
  out.reserve(s.size());
  bool changed = false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      if (s[i + 1] == 'u') {
        if (auto v = hex_at(s, i + 2, 4); v >= 0) {
          put_utf8(out, static_cast<uint32_t>(v));
          i += 5;
          changed = true;
          continue;
        }
      } else if (s[i + 1] == 'x') {
        if (auto v = hex_at(s, i + 2, 2); v >= 0) {
          out += static_cast<char>(v);
          i += 3;
          changed = true;
          continue;
        }
      }
    }
    out += s[i];
  }
  s.swap(out);
  return changed;
}

// Length of the UTF-8 sequence starting at s[i] when it is well formed, else 1 (a Latin-1
// byte, as CSIC's values hold).
size_t utf8_length(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
  if (n == 1 || i + n > s.size())
    return 1;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
      return 1;
  return n;
}

bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

// A run of letters and '_' of a value: kept (lowercased) when it, or each '_'-separated
// part of it, is a keyword; otherwise each letter folded to a/A.
void fold_run(std::string_view run, const text_options& opts, std::string& out) {
  auto fold_part = [&](std::string_view part) {
    std::string low;
    for (char c : part)
      low += ascii_lower(c);
    if (is_keyword(low, opts.keywords)) {
      out += low;
      return;
    }
    for (char c : part)
      out += c == '_' ? '_' : (c >= 'A' && c <= 'Z') ? 'A' : 'a';
  };
  std::string low;
  for (char c : run)
    low += ascii_lower(c);
  if (is_keyword(low, opts.keywords)) {
    out += low;
    return;
  }
  size_t i = 0;
  while (i < run.size()) {
    auto us = run.find('_', i);
    auto end = us == std::string_view::npos ? run.size() : us;
    if (end > i)
      fold_part(run.substr(i, end - i));
    if (us == std::string_view::npos)
      break;
    out += '_';
    i = us + 1;
  }
}

// text_options::originals: the '\x1f' mark and `raw` as the text before decoding wrote a
// value: with fold_value_letters, letters a/A except in %XX escapes and each non-ASCII code
// point 'a'; with zero_digits, digits 0 except in escapes.
void append_original(std::string_view raw, const text_options& opts, std::string& out) {
  out += '\x1f';
  std::string s{raw};
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (escape_at(s, i)) {
      out.append(s, i, 3);
      i += 3;
    } else if (opts.fold_value_letters && static_cast<unsigned char>(c) >= 0x80) {
      out += 'a';
      i += utf8_length(s, i);
    } else {
      if (opts.fold_value_letters && c >= 'a' && c <= 'z')
        c = 'a';
      else if (opts.fold_value_letters && c >= 'A' && c <= 'Z')
        c = 'A';
      else if (opts.zero_digits && c >= '1' && c <= '9')
        c = '0';
      out += c;
      ++i;
    }
  }
}

// A path with text_options::decode: percent escapes decoded while they change it; with
// originals, the original path follows a decoded one that differs.
std::string decode_path(std::string_view p, const text_options& opts) {
  std::string s{p};
  bool changed = false;
  for (int round = 0; round < 3 && percent_decode(s); ++round)
    changed = true;
  if (changed && opts.originals) {
    // Path letters are not folded: the original is the path as sent.
    s += '\x1f';
    s.append(p);
  }
  return s;
}

// A query string or form body with decode (and keyword folding): each value through
// fold_value, names percent-decoded, '&' and '=' kept.
std::string fold_params(std::string_view params, const text_options& opts) {
  std::string out;
  out.reserve(params.size());
  size_t i = 0;
  while (true) {
    auto amp = params.find('&', i);
    auto seg = params.substr(i, amp == std::string_view::npos ? std::string_view::npos : amp - i);
    auto eq = seg.find('=');
    if (eq == std::string_view::npos) {
      out += fold_value(seg, opts);
    } else {
      std::string name{seg.substr(0, eq)};
      if (opts.decode)
        percent_decode(name);
      out += name;
      out += '=';
      out += fold_value(seg.substr(eq + 1), opts);
    }
    if (amp == std::string_view::npos)
      break;
    out += '&';
    i = amp + 1;
  }
  return out;
}

// A URL with decode/keywords: the path percent-decoded (with decode), the query string's
// values folded as parameters.
std::string fold_url(std::string_view u, const text_options& opts) {
  auto q = u.find('?');
  auto path = u.substr(0, q);
  std::string url = opts.decode ? decode_path(path, opts) : std::string{path};
  if (q != std::string_view::npos)
    url += "?" + fold_params(u.substr(q + 1), opts);
  return url;
}

// A header value that is an absolute http(s) URL (Referer, Origin, Location).
bool absolute_url(std::string_view v) {
  auto starts = [&](std::string_view p) {
    return v.size() >= p.size() && iequals(v.substr(0, p.size()), p);
  };
  return starts("http://") || starts("https://");
}

bool form_like(std::string_view body) {
  return !body.empty() && body.find('=') != std::string_view::npos && body.front() != '{'
         && body.front() != '[' && body.front() != '<';
}

} // namespace

std::string fold_value(std::string_view raw_value, const text_options& opts) {
  std::string v{raw_value};
  bool doubled = false;
  bool decoded = false; // by percent, entity or JavaScript decoding ('+' alone does not count)
  if (opts.decode) {
    std::replace(v.begin(), v.end(), '+', ' ');
    for (int round = 0; round < 3; ++round) {
      bool pct = percent_decode(v);
      bool changed = pct;
      changed = entity_decode(v) || changed;
      changed = js_decode(v) || changed;
      if (pct && round > 0)
        doubled = true;
      if (!changed)
        break;
      decoded = true;
    }
  }
  std::string out;
  out.reserve(v.size() + 3);
  if (doubled)
    out += "%25";
  if (!opts.fold_value_letters) {
    for (char c : v)
      out += opts.zero_digits && c >= '1' && c <= '9' ? '0' : c;
    if (decoded && opts.originals)
      append_original(raw_value, opts, out);
    return out;
  }
  const bool v2_marks = opts.keywords >= 2;
  for (size_t i = 0; i < v.size();) {
    char c = v[i];
    if (v2_marks && c == '$' && i + 1 < v.size() && word_char(v[i + 1])) {
      // A MongoDB operator keeps its '$' and name ({"$ne": null}); '$' before any other
      // word is punctuation and the word folds as usual.
      size_t j = i + 1;
      while (j < v.size() && word_char(v[j]))
        ++j;
      std::string op = "$";
      for (size_t k = i + 1; k < j; ++k)
        op += ascii_lower(v[k]);
      if (is_keyword(op, opts.keywords)) {
        out += op;
        i = j;
        continue;
      }
      out += '$';
      ++i;
    } else if (v2_marks && c == '\\' && i + 1 < v.size()
               && (v[i + 1] == 'r' || v[i + 1] == 'n' || v[i + 1] == 't')) {
      // A written-out CR, LF or tab escape (\r\nSet-Cookie:) stays itself, so that header
      // injection through an unescaping back end is not a backslash and a letter.
      out += c;
      out += v[i + 1];
      i += 2;
    } else if (word_char(c)) {
      size_t j = i;
      while (j < v.size() && word_char(v[j]))
        ++j;
      fold_run(std::string_view{v}.substr(i, j - i), opts, out);
      i = j;
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      out += opts.decode ? 'a' : c;
      i += opts.decode ? utf8_length(v, i) : 1;
    } else {
      out += opts.zero_digits && c >= '1' && c <= '9' ? '0' : c;
      ++i;
    }
  }
  if (decoded && opts.originals)
    append_original(raw_value, opts, out);
  return out;
}

std::string to_model_text(const http_request& r, const text_options& opts) {
  std::string out;
  size_t n = r.method.size() + r.url.size() + r.version.size() + r.body.size() + 4;
  for (auto& [k, v] : r.headers)
    n += k.size() + v.size() + 3;
  out.reserve(n);
  auto add = [&out](std::string_view s) {
    if (s.empty())
      return;
    if (!out.empty())
      out += ' ';
    out.append(s);
  };
  add(r.method);
  const bool v2 = opts.decode || opts.keywords > 0;
  if (v2) {
    add(fold_url(r.url, opts));
  } else if (opts.fold_value_letters) {
    auto url = r.url;
    if (auto q = url.find('?'); q != std::string::npos)
      fold_value_letters(url, q);
    add(url);
  } else {
    add(r.url);
  }
  add(r.version);
  if (!opts.drop_headers) {
    std::vector<const std::pair<std::string, std::string>*> fields;
    fields.reserve(r.headers.size());
    for (auto& h : r.headers)
      fields.push_back(&h);
    if (opts.sort_headers)
      std::stable_sort(fields.begin(), fields.end(), [](auto* a, auto* b) {
        return std::lexicographical_compare(a->first.begin(), a->first.end(), b->first.begin(),
                                            b->first.end(), [](char x, char y) {
                                              return ascii_lower(x) < ascii_lower(y);
                                            });
      });
    for (auto* h : fields) {
      bool is_cookie = iequals(h->first, "cookie");
      if (is_cookie && opts.cookie == text_options::cookie_mode::drop)
        continue;
      add(h->first + ":");
      if (v2 && opts.header_urls && absolute_url(h->second))
        add(fold_url(h->second, opts));
      else if (!is_cookie || opts.cookie == text_options::cookie_mode::keep)
        add(h->second);
    }
  }
  if (v2) {
    add(form_like(r.body) ? fold_params(r.body, opts) : fold_value(r.body, opts));
  } else if (opts.fold_value_letters) {
    auto body = r.body;
    fold_value_letters(body, 0);
    add(body);
  } else {
    add(r.body);
  }
  if (opts.zero_digits)
    fold_digits(out);
  return out;
}

namespace {

bool looks_like_request_line(std::string_view line) {
  auto sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0 || sp > 32)
    return false;
  for (unsigned char c : line.substr(0, sp))
    if (!(c >= 'A' && c <= 'Z') && c != '-' && c != '_')
      return false;
  auto target = line.substr(sp + 1);
  if (target.starts_with("/") || target.starts_with("*"))
    return true;
  auto scheme = target.find("://");
  if (scheme == std::string_view::npos || scheme == 0 || scheme > 10)
    return false;
  for (unsigned char c : target.substr(0, scheme))
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
      return false;
  return true;
}

bool blank(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
      return false;
  return true;
}

} // namespace

std::vector<std::string_view> split_http_stream(std::string_view text) {
  std::vector<std::string_view> out;
  size_t start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    auto end = nl == std::string_view::npos ? text.size() : nl;
    if (pos > start && looks_like_request_line(text.substr(pos, end - pos))) {
      if (!blank(text.substr(start, pos - start)))
        out.push_back(text.substr(start, pos - start));
      start = pos;
    }
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
  }
  if (start < text.size() && !blank(text.substr(start)))
    out.push_back(text.substr(start));
  return out;
}

std::string to_model_text_lenient(std::string_view raw, const text_options& opts, bool* ok) {
  auto r = parse_http_request(raw.substr(0, std::min(raw.size(), max_request_bytes)));
  if (ok)
    *ok = static_cast<bool>(r);
  if (r)
    return to_model_text(*r, opts);
  std::string out{raw.substr(0, std::min(raw.size(), max_request_bytes))};
  if (opts.zero_digits)
    fold_digits(out);
  return out;
}

} // namespace comb::anomaly
