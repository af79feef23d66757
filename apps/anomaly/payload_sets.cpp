// Payload sets, their encoding and injection into requests (see payload_sets.hpp).
#include "apps/anomaly/payload_sets.hpp"

#include "base/errc.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

namespace comb::anomaly {

namespace fs = std::filesystem;

std::string default_payload_dir(const std::string& repo_root) {
  return repo_root + "/apps/anomaly/payloads";
}

namespace {

caf::expected<std::vector<payload_set>> load_kind(const fs::path& dir, bool attack) {
  std::vector<payload_set> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return out;
  std::vector<fs::path> files;
  for (auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".txt")
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (auto& p : files) {
    std::ifstream f(p, std::ios::binary);
    if (!f)
      return make_error(errc::invalid_argument, "cannot read payload file " + p.string());
    payload_set s;
    s.name = p.stem().string();
    s.attack = attack;
    std::string line;
    while (std::getline(f, line)) {
      if (!line.empty() && line.back() == '\r')
        line.pop_back();
      if (line.empty() || line[0] == '#')
        continue;
      s.lines.push_back(std::move(line));
    }
    out.push_back(std::move(s));
  }
  return out;
}

bool hex(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

bool has_escape(std::string_view s) {
  for (size_t i = 0; i + 2 < s.size(); ++i)
    if (s[i] == '%' && hex(s[i + 1]) && hex(s[i + 2]))
      return true;
  return false;
}

void put_escape(std::string& out, unsigned char c) {
  static const char digits[] = "0123456789ABCDEF";
  out += '%';
  out += digits[c >> 4];
  out += digits[c & 15];
}

// FNV-1a, 64 bit: stable across platforms and runs, unlike std::hash.
uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// A parameter value inside a request: which string and where.
struct slot {
  std::string* text;
  size_t begin;
  size_t end;
};

void collect_slots(std::string& s, size_t from, std::vector<slot>& out) {
  size_t i = from;
  while (i <= s.size()) {
    auto amp = s.find('&', i);
    auto end = amp == std::string::npos ? s.size() : amp;
    auto eq = s.find('=', i);
    if (eq != std::string::npos && eq < end)
      out.push_back({&s, eq + 1, end});
    if (amp == std::string::npos)
      break;
    i = amp + 1;
  }
}

bool form_body(const std::string& body) {
  if (body.empty() || body.find('=') == std::string::npos)
    return false;
  auto c = body.front();
  return c != '{' && c != '[' && c != '<';
}

} // namespace

caf::expected<payload_dir> load_payload_dir(const std::string& dir) {
  payload_dir d;
  auto a = load_kind(fs::path{dir} / "attacks", true);
  if (!a)
    return a.error();
  auto b = load_kind(fs::path{dir} / "benign", false);
  if (!b)
    return b.error();
  d.attacks = std::move(*a);
  d.benign = std::move(*b);
  if (d.attacks.empty() && d.benign.empty())
    return make_error(errc::not_found, "no payload files in " + dir
                                         + " (expected attacks/*.txt and/or benign/*.txt)");
  return d;
}

std::string encode_payload(std::string_view line) {
  std::string out;
  out.reserve(line.size() * 3);
  if (has_escape(line)) {
    for (unsigned char c : line) {
      if (c == ' ' || c == '&' || c == '#' || c >= 0x80 || c < 0x20)
        put_escape(out, c);
      else
        out += static_cast<char>(c);
    }
    return out;
  }
  for (unsigned char c : line) {
    if (std::isalnum(c) && c < 0x80)
      out += static_cast<char>(c);
    else if (c == '*' || c == '-' || c == '.' || c == '_')
      out += static_cast<char>(c);
    else if (c == ' ')
      out += '+';
    else
      put_escape(out, c);
  }
  return out;
}

line_use use_of(std::string_view line) {
  auto h = fnv1a(line) % 100;
  return h < 60 ? line_use::train : h < 80 ? line_use::calibration : line_use::test;
}

const char* to_string(line_use u) {
  switch (u) {
  case line_use::train:
    return "train";
  case line_use::calibration:
    return "calibration";
  default:
    return "test";
  }
}

bool has_non_latin(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80)
      continue;
    uint32_t cp = 0;
    size_t n = 0;
    if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      n = 1;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      n = 2;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      n = 3;
    } else {
      continue;
    }
    if (i + n >= s.size())
      break;
    for (size_t k = 1; k <= n; ++k)
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += n;
    // General punctuation, currency and other symbols (U+2000..U+2BFF) are not letters.
    if (cp >= 0x370 && !(cp >= 0x2000 && cp < 0x2C00))
      return true;
  }
  return false;
}

http_request inject_value(const http_request& base, std::string_view wire, std::mt19937_64& rng) {
  http_request r = base;
  std::vector<slot> slots;
  if (auto q = r.url.find('?'); q != std::string::npos)
    collect_slots(r.url, q + 1, slots);
  bool body_form = form_body(r.body);
  if (body_form)
    collect_slots(r.body, 0, slots);
  if (slots.empty()) {
    static const char* names[] = {"q", "id", "name", "search", "page", "file", "url", "text"};
    r.url += r.url.find('?') == std::string::npos ? '?' : '&';
    r.url += names[rng() % std::size(names)];
    r.url += '=';
    r.url.append(wire);
    return r;
  }
  auto& s = slots[rng() % slots.size()];
  bool replace = rng() % 10 < 7;
  auto before = r.body.size();
  if (replace)
    s.text->replace(s.begin, s.end - s.begin, wire);
  else
    s.text->insert(s.end, wire);
  if (r.body.size() != before)
    for (auto& [k, v] : r.headers)
      if (k.size() == 14 && std::equal(k.begin(), k.end(), "content-length", [](char a, char b) {
            return std::tolower(a) == b;
          }))
        v = std::to_string(r.body.size());
  return r;
}

std::string render_http(const http_request& r) {
  std::string out = r.method + " " + r.url + (r.version.empty() ? "" : " " + r.version) + "\r\n";
  for (auto& [k, v] : r.headers)
    out += k + ": " + v + "\r\n";
  out += "\r\n";
  out += r.body;
  return out;
}

caf::expected<std::vector<injected_request>> inject_sets(
  const std::vector<const http_request*>& bases, const std::vector<payload_set>& sets,
  const injection_options& opts) {
  if (bases.empty())
    return make_error(errc::invalid_argument, "no requests to put payloads into");
  std::vector<injected_request> out;
  std::mt19937_64 rng(opts.seed);
  for (size_t si = 0; si < sets.size(); ++si) {
    auto& set = sets[si];
    std::vector<const std::string*> kept;
    for (auto& l : set.lines)
      if (opts.uses.empty()
          || std::find(opts.uses.begin(), opts.uses.end(), use_of(l)) != opts.uses.end())
        kept.push_back(&l);
    if (opts.per_set > 0 && kept.size() > opts.per_set) {
      // Evenly spaced, so that a cap keeps the file's variety (generators write by template).
      std::vector<const std::string*> cut;
      for (size_t k = 0; k < opts.per_set; ++k)
        cut.push_back(kept[k * kept.size() / opts.per_set]);
      kept.swap(cut);
    }
    for (auto* l : kept) {
      auto wire = encode_payload(*l);
      for (int c = 0; c < std::max(opts.copies, 1); ++c) {
        injected_request ir;
        ir.request.request = inject_value(*bases[rng() % bases.size()], wire, rng);
        ir.request.raw = render_http(ir.request.request);
        ir.request.label = set.attack ? 1 : 0;
        ir.set = si;
        ir.line = *l;
        out.push_back(std::move(ir));
      }
    }
  }
  return out;
}

} // namespace comb::anomaly
