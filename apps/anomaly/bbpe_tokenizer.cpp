// Byte-level BPE training (incremental pair counts with a lazy max-heap) and encoding
// (merge-rank table, lowest rank first). See bbpe_tokenizer.hpp.
#include "apps/anomaly/bbpe_tokenizer.hpp"

#include "base/errc.hpp"

#include <algorithm>
#include <charconv>
#include <queue>
#include <unordered_map>

namespace comb::anomaly {

namespace {

enum byte_class : uint8_t { cls_word, cls_space, cls_punct };

struct class_table {
  uint8_t cls[256];
  bool hex[256];
  constexpr class_table() : cls(), hex() {
    for (int c = 0; c < 256; ++c) {
      bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                   || c >= 0x80;
      cls[c] = alnum ? cls_word : (c == ' ' ? cls_space : cls_punct);
      hex[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
  }
};
constexpr class_table table;

inline bool escape_at(const unsigned char* p, size_t i, size_t n) {
  return p[i] == '%' && i + 2 < n && table.hex[p[i + 1]] && table.hex[p[i + 2]];
}

/// Calls f(chunk) for each chunk of `text` (see the class comment for the rules).
template <class F>
inline void for_each_chunk(std::string_view text, F&& f) {
  auto p = reinterpret_cast<const unsigned char*>(text.data());
  size_t n = text.size();
  size_t i = 0;
  constexpr size_t cap = bbpe_tokenizer::max_chunk_bytes;
  while (i < n) {
    size_t start = i;
    if (p[i] == ' ' && i + 1 < n && p[i + 1] != ' ')
      ++i; // a single space joins the chunk after it
    size_t limit = std::min(n, start + cap);
    if (escape_at(p, i, n)) {
      i += 3;
      while (i + 3 <= limit && escape_at(p, i, n))
        i += 3;
    } else {
      uint8_t c = table.cls[p[i]];
      ++i;
      if (c == cls_punct) {
        while (i < limit && table.cls[p[i]] == cls_punct && !escape_at(p, i, n))
          ++i;
      } else {
        while (i < limit && table.cls[p[i]] == c)
          ++i;
      }
    }
    f(text.substr(start, i - start));
  }
}

inline uint64_t pair_key(int32_t l, int32_t r) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
}

inline uint64_t mix(uint64_t k) {
  k ^= k >> 31;
  k *= 0x9E3779B97F4A7C15ull;
  k ^= k >> 29;
  return k;
}

} // namespace

bbpe_tokenizer::bbpe_tokenizer() {
  token_bytes_.reserve(base_vocab);
  token_bytes_.emplace_back();
  for (int b = 0; b < 256; ++b)
    token_bytes_.emplace_back(1, static_cast<char>(b));
  keys_.assign(64, 0);
  values_.assign(64, 0);
  mask_ = 63;
}

void bbpe_tokenizer::chunk(std::string_view text, const std::function<void(std::string_view)>& f) {
  for_each_chunk(text, f);
}

void bbpe_tokenizer::add_merge(int32_t left, int32_t right) {
  auto id = static_cast<int32_t>(token_bytes_.size());
  merges_.emplace_back(left, right);
  token_bytes_.push_back(token_bytes_[left] + token_bytes_[right]);
  // Keep the table at most half full.
  if ((merges_.size() + 1) * 2 > keys_.size()) {
    size_t cap = keys_.size() * 2;
    std::vector<uint64_t> keys(cap, 0);
    std::vector<int32_t> values(cap, 0);
    uint64_t mask = cap - 1;
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (keys_[i] == 0)
        continue;
      uint64_t h = mix(keys_[i]) & mask;
      while (keys[h] != 0)
        h = (h + 1) & mask;
      keys[h] = keys_[i];
      values[h] = values_[i];
    }
    keys_.swap(keys);
    values_.swap(values);
    mask_ = mask;
  }
  uint64_t k = pair_key(left, right);
  uint64_t h = mix(k) & mask_;
  while (keys_[h] != 0 && keys_[h] != k)
    h = (h + 1) & mask_;
  if (keys_[h] == 0) { // first merge of a pair wins; a repeat is never learned
    keys_[h] = k;
    values_[h] = id;
  }
}

inline int32_t bbpe_tokenizer::lookup(int32_t left, int32_t right) const {
  uint64_t k = pair_key(left, right);
  uint64_t h = mix(k) & mask_;
  for (;;) {
    uint64_t kk = keys_[h];
    if (kk == k)
      return values_[h];
    if (kk == 0)
      return 0;
    h = (h + 1) & mask_;
  }
}

void bbpe_tokenizer::encode_chunk(std::string_view chunk, std::vector<int32_t>& out,
                                  size_t limit) const {
  int32_t syms[max_chunk_bytes];
  int32_t ranks[max_chunk_bytes]; // ranks[i]: id merging syms[i], syms[i+1]; 0 = none
  size_t n = chunk.size();
  for (size_t i = 0; i < n; ++i)
    syms[i] = static_cast<unsigned char>(chunk[i]) + 1;
  if (n > 1) {
    for (size_t i = 0; i + 1 < n; ++i)
      ranks[i] = lookup(syms[i], syms[i + 1]);
    for (;;) {
      int32_t best = 0;
      size_t at = 0;
      for (size_t i = 0; i + 1 < n; ++i)
        if (ranks[i] != 0 && (best == 0 || ranks[i] < best)) {
          best = ranks[i];
          at = i;
        }
      if (best == 0)
        break;
      // Merge at `at`; pairs of the same id further right are merged in later rounds.
      syms[at] = best;
      for (size_t i = at + 1; i + 1 < n; ++i) {
        syms[i] = syms[i + 1];
        ranks[i] = ranks[i + 1];
      }
      --n;
      if (at > 0)
        ranks[at - 1] = lookup(syms[at - 1], syms[at]);
      if (at + 1 < n)
        ranks[at] = lookup(syms[at], syms[at + 1]);
    }
  }
  for (size_t i = 0; i < n && (limit == 0 || out.size() < limit); ++i)
    out.push_back(syms[i]);
}

void bbpe_tokenizer::encode_into(std::string_view text, std::vector<int32_t>& out,
                                 size_t max_tokens) const {
  bool full = false;
  for_each_chunk(text, [&](std::string_view c) {
    if (full)
      return;
    encode_chunk(c, out, max_tokens);
    if (max_tokens != 0 && out.size() >= max_tokens)
      full = true;
  });
}

std::vector<int32_t> bbpe_tokenizer::encode(std::string_view text, size_t max_tokens) const {
  std::vector<int32_t> out;
  out.reserve(max_tokens != 0 ? max_tokens : text.size() / 3 + 8);
  encode_into(text, out, max_tokens);
  return out;
}

caf::expected<std::string> bbpe_tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto id = ids[i];
    if (id <= 0 || static_cast<size_t>(id) >= token_bytes_.size())
      return make_error(errc::invalid_argument, "token id " + std::to_string(id) + " at position "
                                                  + std::to_string(i)
                                                  + " is outside the vocabulary 1.."
                                                  + std::to_string(token_bytes_.size() - 1));
    out += token_bytes_[static_cast<size_t>(id)];
  }
  return out;
}

caf::expected<bbpe_tokenizer> bbpe_tokenizer::train(const std::vector<std::string_view>& corpus,
                                                    size_t vocab_size,
                                                    const progress_fn& progress) {
  if (vocab_size < static_cast<size_t>(base_vocab) || vocab_size > (size_t{1} << 20))
    return make_error(errc::invalid_argument,
                      "BBPE vocabulary size " + std::to_string(vocab_size)
                        + " is outside 257..1048576 (padding + 256 bytes + merges)");
  bbpe_tokenizer tok;
  // 1. Count distinct chunks ("words").
  std::unordered_map<std::string_view, int64_t> word_counts;
  word_counts.reserve(1 << 16);
  for (auto text : corpus)
    for_each_chunk(text, [&](std::string_view c) {
      if (c.size() > 1)
        ++word_counts[c];
    });
  std::vector<std::pair<std::string_view, int64_t>> sorted(word_counts.begin(), word_counts.end());
  std::sort(sorted.begin(), sorted.end()); // deterministic word order
  word_counts.clear();
  std::vector<std::vector<int32_t>> words(sorted.size());
  std::vector<int64_t> counts(sorted.size());
  for (size_t w = 0; w < sorted.size(); ++w) {
    counts[w] = sorted[w].second;
    words[w].reserve(sorted[w].first.size());
    for (unsigned char c : sorted[w].first)
      words[w].push_back(static_cast<int32_t>(c) + 1);
  }
  // 2. Pair counts and where each pair occurs.
  std::unordered_map<uint64_t, int64_t> pair_counts;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;
  pair_counts.reserve(1 << 16);
  where.reserve(1 << 16);
  for (size_t w = 0; w < words.size(); ++w) {
    auto& s = words[w];
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      auto k = pair_key(s[i], s[i + 1]);
      pair_counts[k] += counts[w];
      auto& v = where[k];
      if (v.empty() || v.back() != w)
        v.push_back(static_cast<uint32_t>(w));
    }
  }
  // Max-heap on (count, smaller key first); stale entries are skipped when popped.
  using entry = std::pair<int64_t, uint64_t>;
  auto cmp = [](const entry& a, const entry& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;
  };
  std::priority_queue<entry, std::vector<entry>, decltype(cmp)> heap(cmp);
  for (auto& [k, c] : pair_counts)
    heap.emplace(c, k);
  std::vector<uint32_t> seen(words.size(), 0);
  uint32_t stamp = 0;
  std::vector<uint64_t> touched;
  size_t wanted = vocab_size - base_vocab;
  while (tok.merges_.size() < wanted && !heap.empty()) {
    auto [c, k] = heap.top();
    heap.pop();
    auto it = pair_counts.find(k);
    if (it == pair_counts.end() || it->second != c)
      continue; // stale
    if (c < 2)
      break;
    auto left = static_cast<int32_t>(k >> 32);
    auto right = static_cast<int32_t>(k & 0xffffffffu);
    auto id = static_cast<int32_t>(tok.token_bytes_.size());
    tok.add_merge(left, right);
    ++stamp;
    touched.clear();
    auto occ = std::move(where[k]);
    where.erase(k);
    for (auto w : occ) {
      if (seen[w] == stamp)
        continue;
      seen[w] = stamp;
      auto& s = words[w];
      bool has = false;
      for (size_t i = 0; i + 1 < s.size(); ++i)
        if (s[i] == left && s[i + 1] == right) {
          has = true;
          break;
        }
      if (!has)
        continue;
      auto cw = counts[w];
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        auto pk = pair_key(s[i], s[i + 1]);
        pair_counts[pk] -= cw;
        touched.push_back(pk);
      }
      size_t o = 0;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
          s[o++] = id;
          i += 2;
        } else {
          s[o++] = s[i++];
        }
      }
      s.resize(o);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        auto pk = pair_key(s[i], s[i + 1]);
        pair_counts[pk] += cw;
        touched.push_back(pk);
        if (s[i] == id || s[i + 1] == id) {
          auto& v = where[pk];
          if (v.empty() || v.back() != w)
            v.push_back(w);
        }
      }
    }
    pair_counts.erase(k);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (auto pk : touched) {
      if (pk == k)
        continue;
      auto pit = pair_counts.find(pk);
      if (pit == pair_counts.end())
        continue;
      if (pit->second <= 0)
        pair_counts.erase(pit);
      else
        heap.emplace(pit->second, pk);
    }
    if (progress && (tok.merges_.size() % 256 == 0 || tok.merges_.size() == wanted))
      progress(tok.merges_.size(), wanted);
  }
  return tok;
}

std::string bbpe_tokenizer::serialize() const {
  std::string out = "comb-bbpe 1 " + std::to_string(merges_.size()) + "\n";
  out.reserve(out.size() + merges_.size() * 12);
  for (auto& [l, r] : merges_) {
    out += std::to_string(l);
    out += ' ';
    out += std::to_string(r);
    out += '\n';
  }
  return out;
}

caf::expected<bbpe_tokenizer> bbpe_tokenizer::deserialize(std::string_view text) {
  auto bad = [](size_t line, const std::string& what) {
    return make_error(errc::bad_model,
                      "BBPE tokenizer, line " + std::to_string(line) + ": " + what);
  };
  auto read_int = [](std::string_view& s, int64_t& v) {
    while (!s.empty() && s.front() == ' ')
      s.remove_prefix(1);
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p == s.data())
      return false;
    s.remove_prefix(static_cast<size_t>(p - s.data()));
    return true;
  };
  auto nl = text.find('\n');
  if (nl == std::string_view::npos || !text.starts_with("comb-bbpe 1 "))
    return bad(1, "header is not 'comb-bbpe 1 <count>'");
  auto header = text.substr(12, nl - 12);
  int64_t count = 0;
  if (!read_int(header, count) || count < 0 || count > (1 << 20) || !header.empty())
    return bad(1, "merge count is not a number in 0..1048576");
  text.remove_prefix(nl + 1);
  bbpe_tokenizer tok;
  for (int64_t i = 0; i < count; ++i) {
    size_t line = static_cast<size_t>(i) + 2;
    nl = text.find('\n');
    if (nl == std::string_view::npos)
      return bad(line, "missing (file ends after " + std::to_string(i) + " of "
                         + std::to_string(count) + " merges)");
    auto l = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    int64_t a = 0;
    int64_t b = 0;
    if (!read_int(l, a) || !read_int(l, b) || !l.empty())
      return bad(line, "is not two token ids");
    auto id = static_cast<int64_t>(tok.token_bytes_.size());
    if (a < 1 || b < 1 || a >= id || b >= id)
      return bad(line, "refers to a token id outside 1.." + std::to_string(id - 1));
    if (tok.lookup(static_cast<int32_t>(a), static_cast<int32_t>(b)) != 0)
      return bad(line, "repeats an earlier merge");
    tok.add_merge(static_cast<int32_t>(a), static_cast<int32_t>(b));
  }
  if (!text.empty())
    return bad(static_cast<size_t>(count) + 2, "unexpected text after the last merge");
  return tok;
}

} // namespace comb::anomaly
