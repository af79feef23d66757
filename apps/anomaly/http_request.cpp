// Parsing and rendering of single HTTP requests (see http_request.hpp).
#include "apps/anomaly/http_request.hpp"

#include "base/errc.hpp"

#include <algorithm>

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

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i]))
      return false;
  return true;
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

} // namespace

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
  if (opts.fold_value_letters) {
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
                                            b->first.end(),
                                            [](char x, char y) { return lower(x) < lower(y); });
      });
    for (auto* h : fields) {
      bool is_cookie = iequals(h->first, "cookie");
      if (is_cookie && opts.cookie == text_options::cookie_mode::drop)
        continue;
      add(h->first + ":");
      if (!is_cookie || opts.cookie == text_options::cookie_mode::keep)
        add(h->second);
    }
  }
  if (opts.fold_value_letters) {
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
