// The detector as one unit and its one-file form (see detector.hpp).
#include "apps/anomaly/detector.hpp"

#include "apps/anomaly/keywords.hpp"
#include "base/errc.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <numeric>
#include <sstream>

namespace comb::anomaly {

namespace {

const char* cookie_name(text_options::cookie_mode m) {
  switch (m) {
  case text_options::cookie_mode::keep:
    return "keep";
  case text_options::cookie_mode::drop:
    return "drop";
  default:
    return "name_only";
  }
}

} // namespace

std::string detector_config::serialize() const {
  std::ostringstream os;
  os << "vocab_size=" << vocab_size << "\n"
     << "text.cookie=" << cookie_name(text.cookie) << "\n"
     << "text.sort_headers=" << (text.sort_headers ? 1 : 0) << "\n"
     << "text.drop_headers=" << (text.drop_headers ? 1 : 0) << "\n"
     << "text.zero_digits=" << (text.zero_digits ? 1 : 0) << "\n"
     << "text.fold_value_letters=" << (text.fold_value_letters ? 1 : 0) << "\n"
     << "text.decode=" << (text.decode ? 1 : 0) << "\n"
     << "text.keywords=" << text.keywords << "\n"
     << "text.header_urls=" << (text.header_urls ? 1 : 0) << "\n"
     << "text.originals=" << (text.originals ? 1 : 0) << "\n"
     << "threshold=" << std::setprecision(9) << threshold << "\n";
  if (!calibration.empty())
    os << "calibration=";
  for (char ch : calibration) // one line, whatever it was given
    os << (ch == '\n' || ch == '\r' ? ' ' : ch);
  if (!calibration.empty())
    os << "\n";
  if (!held_out.empty()) {
    os << "train.held_out=";
    for (size_t i = 0; i < held_out.size(); ++i)
      os << (i ? "," : "") << held_out[i];
    os << "\n";
  }
  return os.str();
}

caf::expected<detector_config> detector_config::deserialize(std::string_view text) {
  detector_config c;
  // Model files written before these options existed saw digits and letters as they are.
  c.text.zero_digits = false;
  c.text.fold_value_letters = false;
  size_t line_no = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (line.empty())
      continue;
    auto eq = line.find('=');
    if (eq == std::string_view::npos)
      return make_error(errc::bad_model,
                        "detector config line " + std::to_string(line_no) + " is not key=value");
    auto key = std::string{line.substr(0, eq)};
    auto val = std::string{line.substr(eq + 1)};
    auto bad = [&] {
      return make_error(errc::bad_model, "detector config: bad value '" + val + "' for " + key);
    };
    auto num = [&](auto& out) {
      auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), out);
      return ec == std::errc{} && p == val.data() + val.size();
    };
    try {
      if (key == "vocab_size") {
        if (!num(c.vocab_size))
          return bad();
      } else if (key == "max_tokens") {
        if (!num(c.max_tokens) || c.max_tokens == 0)
          return bad();
      } else if (key == "text.cookie") {
        if (val == "keep")
          c.text.cookie = text_options::cookie_mode::keep;
        else if (val == "drop")
          c.text.cookie = text_options::cookie_mode::drop;
        else if (val == "name_only")
          c.text.cookie = text_options::cookie_mode::name_only;
        else
          return bad();
      } else if (key == "text.sort_headers") {
        c.text.sort_headers = val == "1";
      } else if (key == "text.drop_headers") {
        c.text.drop_headers = val == "1";
      } else if (key == "text.zero_digits") {
        c.text.zero_digits = val == "1";
      } else if (key == "text.fold_value_letters") {
        c.text.fold_value_letters = val == "1";
      } else if (key == "text.decode") {
        c.text.decode = val == "1";
      } else if (key == "text.header_urls") {
        c.text.header_urls = val == "1";
      } else if (key == "text.originals") {
        c.text.originals = val == "1";
      } else if (key == "text.keywords") {
        if (!num(c.text.keywords) || c.text.keywords < 0)
          return bad();
        if (c.text.keywords > keyword_list_version)
          return make_error(errc::bad_model, "detector config: keyword list version " + val
                                               + " is newer than this build's ("
                                               + std::to_string(keyword_list_version) + ")");
      } else if (key == "threshold") {
        c.threshold = std::stof(val);
        if (!(c.threshold >= 0.0f && c.threshold <= 1.0f))
          return bad();
      } else if (key == "calibration") {
        c.calibration = val;
      } else if (key == "train.held_out") {
        c.held_out.clear();
        std::string_view v = val;
        while (!v.empty()) {
          auto comma = v.find(',');
          auto part = v.substr(0, comma);
          if (part.empty())
            return bad();
          c.held_out.emplace_back(part);
          v.remove_prefix(comma == std::string_view::npos ? v.size() : comma + 1);
        }
      } else if (key == "model.vocab") {
        if (!num(c.model.vocab))
          return bad();
      } else if (key == "model.embed") {
        if (!num(c.model.embed))
          return bad();
      } else if (key == "model.filters") {
        if (!num(c.model.filters))
          return bad();
      } else if (key == "model.kernel_sizes") {
        c.model.kernel_sizes.clear();
        std::string_view v = val;
        while (!v.empty()) {
          auto comma = v.find(',');
          auto part = v.substr(0, comma);
          int k = 0;
          auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), k);
          if (ec != std::errc{} || k <= 0)
            return bad();
          c.model.kernel_sizes.push_back(k);
          v.remove_prefix(comma == std::string_view::npos ? v.size() : comma + 1);
        }
      } else if (key == "model.dropout") {
        c.model.dropout = std::stof(val);
      } else if (key == "model.learning_rate") {
        c.model.learning_rate = std::stof(val);
      } else if (key == "model.engine") {
        if (val != "fused" && val != "kernels")
          return bad();
        c.model.engine = val;
      } else if (key == "model.seed") {
        if (!num(c.model.seed))
          return bad();
      } // unknown keys are ignored: newer writers may add settings
    } catch (const std::exception&) {
      return bad();
    }
  }
  return c;
}

detector::detector(bbpe_tokenizer tok, textcnn_classifier model, detector_config cfg)
  : tokenizer_(std::move(tok)), model_(std::move(model)), config_(std::move(cfg)) {
  if (config_.max_tokens != 0) {
    auto& ks = model_.options().kernel_sizes;
    auto n = std::clamp<size_t>(config_.max_tokens,
                                static_cast<size_t>(*std::max_element(ks.begin(), ks.end())),
                                size_t{1} << 20);
    // n is in the range set_seq_len takes; were it refused, the model would keep its own
    // length, and the length read back below is the one used either way.
    if (auto err = model_.set_seq_len(static_cast<int>(n)))
      config_.max_tokens = 0;
  }
  config_.model = model_.options();
  config_.max_tokens = static_cast<size_t>(model_.seq_len());
}

std::vector<int32_t> detector::encode_text(std::string_view text) const {
  auto ids = tokenizer_.encode(text, config_.max_tokens);
  if (ids.empty())
    ids.push_back(static_cast<int32_t>(' ') + 1);
  return ids;
}

int pad_batch(const std::vector<std::vector<int32_t>>& seqs, const std::vector<size_t>& idx,
              size_t begin, size_t end, int min_len, std::vector<int32_t>& out) {
  size_t len = static_cast<size_t>(std::max(min_len, 1));
  for (size_t b = begin; b < end; ++b)
    len = std::max(len, seqs[idx[b]].size());
  out.assign((end - begin) * len, bbpe_tokenizer::pad_id);
  for (size_t b = begin; b < end; ++b) {
    auto& s = seqs[idx[b]];
    std::copy(s.begin(), s.end(), out.begin() + static_cast<std::ptrdiff_t>((b - begin) * len));
  }
  return static_cast<int>(len);
}

caf::expected<std::vector<float>> detector::score_encoded(
  const std::vector<std::vector<int32_t>>& seqs, int batch) {
  std::vector<float> out(seqs.size(), 0.0f);
  if (seqs.empty())
    return out;
  batch = std::max(batch, 1);
  // A sequence's score must not depend on its batch mates (issue 22): padded further than
  // itself, padding would enter the convolution windows and the max over time. Both
  // engines read each row's own length only (predict with lengths). Sorted by length, so
  // that batches pad little; results go back to their places.
  const size_t min_len = static_cast<size_t>(std::max(
    *std::max_element(config_.model.kernel_sizes.begin(), config_.model.kernel_sizes.end()), 1));
  auto padded = [&](size_t i) { return std::max(seqs[i].size(), min_len); };
  std::vector<size_t> order(seqs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return padded(a) < padded(b); });
  std::vector<int32_t> buf;
  std::vector<int64_t> lengths;
  for (size_t s = 0; s < order.size();) {
    size_t e = std::min(order.size(), s + static_cast<size_t>(batch));
    int len = pad_batch(seqs, order, s, e, static_cast<int>(min_len), buf);
    lengths.clear();
    for (size_t b = s; b < e; ++b)
      lengths.push_back(static_cast<int64_t>(padded(order[b])));
    auto p = model_.predict(buf, static_cast<int>(e - s), len, lengths);
    if (!p)
      return p.error();
    for (size_t b = s; b < e; ++b)
      out[order[b]] = (*p)[b - s];
    s = e;
  }
  return out;
}

caf::expected<std::vector<float>> detector::score_raw(const std::vector<std::string_view>& raw,
                                                      std::vector<bool>* parsed, int batch) {
  std::vector<std::vector<int32_t>> seqs;
  seqs.reserve(raw.size());
  if (parsed)
    parsed->assign(raw.size(), false);
  for (size_t i = 0; i < raw.size(); ++i) {
    bool ok = false;
    auto text = to_model_text_lenient(raw[i], config_.text, &ok);
    if (parsed)
      (*parsed)[i] = ok;
    seqs.push_back(encode_text(text));
  }
  return score_encoded(seqs, batch);
}

std::string request_first_line(std::string_view unit) {
  auto first = unit.substr(0, unit.find('\n'));
  if (!first.empty() && first.back() == '\r')
    first.remove_suffix(1);
  std::string out;
  for (unsigned char c : first.substr(0, 100))
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  return out;
}

caf::expected<std::vector<scored_request>> score_http_stream(detector& d, std::string_view stream,
                                                             int batch) {
  auto units = split_http_stream(stream);
  std::vector<scored_request> out;
  if (units.empty())
    return out;
  std::vector<bool> parsed;
  auto p = d.score_raw(units, &parsed, batch);
  if (!p)
    return p.error();
  out.resize(units.size());
  for (size_t i = 0; i < units.size(); ++i) {
    auto& r = out[i];
    r.probability = (*p)[i];
    r.parsed = parsed[i];
    r.first_line = request_first_line(units[i]);
  }
  return out;
}

caf::expected<std::string> detector::serialize() const {
  std::map<std::string, std::string> meta;
  meta["comb.kind"] = "anomaly-detector";
  meta["comb.format"] = "1";
  meta["comb.tokenizer"] = tokenizer_.serialize();
  meta["comb.config"] = config_.serialize();
  return model_.save(meta);
}

caf::expected<detector> detector::deserialize(const std::string& bytes,
                                              std::shared_ptr<kernels::backend> on) {
  std::map<std::string, std::string> meta;
  auto model = textcnn_classifier::load(bytes, &meta, std::move(on));
  if (!model)
    return model.error();
  if (meta["comb.kind"] != "anomaly-detector")
    return make_error(errc::bad_model, "model file is not an anomaly detector (comb.kind is '"
                                         + meta["comb.kind"] + "')");
  auto tok = bbpe_tokenizer::deserialize(meta["comb.tokenizer"]);
  if (!tok)
    return tok.error();
  auto cfg = detector_config::deserialize(meta["comb.config"]);
  if (!cfg)
    return cfg.error();
  if (tok->vocab_size() > static_cast<size_t>(model->options().vocab))
    return make_error(errc::bad_model, "tokenizer has " + std::to_string(tok->vocab_size())
                                         + " ids but the model embeds only "
                                         + std::to_string(model->options().vocab));
  // cfg->max_tokens is 0 (the model's seq_len stands) unless the file predates the model's
  // seq_len: then it is the length the file's detector cut at, and wins.
  return detector{std::move(*tok), std::move(*model), std::move(*cfg)};
}

caf::error detector::save(const std::string& path) const {
  auto bytes = serialize();
  if (!bytes)
    return bytes.error();
  auto tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f)
      return make_error(errc::storage_error, "cannot write model file " + tmp);
    f.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
    if (!f)
      return make_error(errc::storage_error, "cannot write model file " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return make_error(errc::storage_error, "cannot rename " + tmp + " to " + path);
  return {};
}

caf::expected<detector> detector::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    return make_error(errc::not_found, "model file not found: " + path);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto d = deserialize(bytes);
  if (!d)
    return make_error(errc::bad_model, path + ": " + describe(d.error()));
  return d;
}

} // namespace comb::anomaly
