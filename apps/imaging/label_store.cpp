// The imaging app's label rows, one per classify call (see label_store.hpp).
#include "apps/imaging/label_store.hpp"

#include "apps/imaging/image_store.hpp"
#include "base/errc.hpp"
#include "storage/transaction.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

namespace comb::apps::imaging {

using nlohmann::json;
using storage::transaction;

namespace {

caf::error unreadable(std::string_view key, const std::string& why) {
  return make_error(errc::corrupt_data, "unreadable row '" + std::string{key} + "' of "
                                          + labels_table + ": " + why);
}

std::string row_key(std::string_view dataset, int64_t first, std::string_view model) {
  auto k = image_key(dataset, first);
  k += '/';
  k += model;
  return k;
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

} // namespace

caf::expected<label_row> read_label_row(std::string_view value, std::string_view key) {
  auto j = json::from_msgpack(value, true, false);
  if (j.is_discarded() || !j.is_object())
    return unreadable(key, "not a MessagePack map");
  label_row row;
  try {
    row.dataset = j.value("dataset", std::string{});
    row.model = j.value("model", std::string{});
    row.digest = j.value("digest", std::string{});
    row.call = j.value("call", std::string{});
    row.version = j.value("version", int64_t{0});
    if (auto l = j.find("labels"); l != j.end()) {
      const auto& labels = *l;
      const auto& scores = j.at("scores");
      auto n = labels.size();
      if (!labels.is_array() || !scores.is_array() || scores.size() != n)
        return unreadable(key, "labels and scores must be arrays of one length");
      auto ix = j.find("indexes");
      if (ix != j.end() && (!ix->is_array() || ix->size() != n))
        return unreadable(key, "indexes must be an array as long as labels");
      auto from = ix == j.end() ? j.at("from").get<int64_t>() : 0;
      row.answers.resize(n);
      for (size_t i = 0; i < n; ++i) {
        auto& a = row.answers[i];
        a.index = ix == j.end() ? from + int64_t(i) : (*ix)[i].get<int64_t>();
        a.label = labels[i].get<int32_t>();
        a.score = scores[i].is_number() ? scores[i].get<float>() : 0.f;
      }
    } else if (j.contains("index")) { // a per-image row of an earlier version
      row.answers.push_back({j.at("index").get<int64_t>(), j.at("label").get<int32_t>(),
                             j.value("score", 0.f)});
    } else {
      return unreadable(key, "neither labels nor index");
    }
  } catch (const json::exception& e) {
    return unreadable(key, e.what());
  }
  return row;
}

json label_row_json(const label_row& row) {
  json labels = json::array(), scores = json::array();
  bool contiguous = true;
  auto from = row.answers.empty() ? int64_t{0} : row.answers.front().index;
  for (size_t i = 0; i < row.answers.size(); ++i) {
    const auto& a = row.answers[i];
    labels.push_back(a.label);
    scores.push_back(std::isfinite(a.score) ? a.score : 0.f);
    contiguous = contiguous && a.index == from + int64_t(i);
  }
  json out{{"dataset", row.dataset}, {"model", row.model}, {"version", row.version},
           {"digest", row.digest},   {"call", row.call},   {"from", from},
           {"count", row.answers.size()}, {"labels", std::move(labels)},
           {"scores", std::move(scores)}};
  if (!contiguous) {
    json ix = json::array();
    for (const auto& a : row.answers)
      ix.push_back(a.index);
    out["indexes"] = std::move(ix);
  }
  return out;
}

caf::error write_labels(transaction& txn, const label_row& row) {
  const auto& a = row.answers;
  if (a.empty())
    return {};
  for (size_t i = 1; i < a.size(); ++i)
    if (a[i].index <= a[i - 1].index)
      return make_error(errc::invalid_argument,
                        "imaging labels: the answers of a call must be in increasing index order "
                        "(index "
                          + std::to_string(a[i].index) + " follows " + std::to_string(a[i - 1].index)
                          + ")");
  auto first = a.front().index, last = a.back().index;
  if (first < 0 || last - first >= max_label_span)
    return make_error(errc::invalid_argument,
                      "imaging labels: the images of one call must lie within "
                        + std::to_string(max_label_span) + " indexes (got " + std::to_string(first)
                        + " to " + std::to_string(last) + ")");
  auto own = row_key(row.dataset, first, row.model);
  auto tail = "/" + row.model;
  auto answered = [&](int64_t index) {
    auto i = std::lower_bound(a.begin(), a.end(), index,
                              [](const label_answer& x, int64_t v) { return x.index < v; });
    return i != a.end() && i->index == index;
  };
  // The model's older rows that answer some of these images: rewritten without them.
  std::vector<std::pair<std::string, std::optional<label_row>>> trimmed;
  caf::error bad;
  auto lo = image_key(row.dataset, std::max<int64_t>(0, first - max_label_span + 1));
  auto hi = image_key(row.dataset, last + 1);
  auto err = txn.scan(labels_table, lo, hi, [&](std::string_view k, std::string_view v) {
    if (k == own || !ends_with(k, tail))
      return true;
    auto old = read_label_row(v, k);
    if (!old)
      return bad = old.error(), false;
    if (old->model != row.model)
      return true;
    auto& ans = old->answers;
    auto n = ans.size();
    ans.erase(std::remove_if(ans.begin(), ans.end(),
                             [&](const label_answer& x) { return answered(x.index); }),
              ans.end());
    if (ans.size() != n)
      trimmed.emplace_back(std::string{k},
                           ans.empty() ? std::nullopt : std::optional<label_row>{std::move(*old)});
    return true;
  });
  if (err || bad)
    return err ? err : bad;
  for (auto& [k, old] : trimmed) {
    auto e = old ? txn.put_row(labels_table, k, label_row_json(*old)) : txn.del(labels_table, k);
    if (e)
      return e;
  }
  return txn.put_row(labels_table, own, label_row_json(row));
}

caf::error scan_labels(transaction& txn, std::string_view dataset, int64_t from, int64_t to,
                       const std::function<bool(const label_row&)>& fn) {
  caf::error bad;
  auto lo = image_key(dataset, std::max<int64_t>(0, from - max_label_span + 1));
  auto hi = to < 0 ? std::string{dataset} + "0" : image_key(dataset, to); // '0' follows '/'
  auto err = txn.scan(labels_table, lo, hi, [&](std::string_view k, std::string_view v) {
    auto row = read_label_row(v, k);
    if (!row)
      return bad = row.error(), false;
    return fn(*row);
  });
  return err ? err : bad;
}

} // namespace comb::apps::imaging
