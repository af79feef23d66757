// The httplog procedures: capture, model labels through the outbox (see httplog.hpp).
#include "apps/nectar/httplog.hpp"
#include "base/ascii.hpp"

#include "apps/anomaly/anomaly_app.hpp"
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/model_store.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/pieces/tensor_spec.hpp"
#include "storage/transaction.hpp"

#include <cctype>
#include <cstring>

namespace comb::nectar {

using nlohmann::json;
using runtime::arg;
using runtime::call_context;
using storage::transaction;

namespace {

/// Scoring attempts of a request before its labeled row records the failure.
constexpr int max_label_attempts = 3;

template <class T>
T opt_arg(const json& args, const char* name, T fallback) {
  return args.is_object() && args.contains(name) && !args[name].is_null() ? arg<T>(args, name)
                                                                          : fallback;
}

/// A request waiting for its model call.
struct label_item {
  std::string id;
  std::string text;
  json rule_label;
  json rule_ids;
};

label_item item_of(const std::string& id, const json& row) {
  return {id, model_text(row), row.value("rule_label", json(0)), row.value("rule_ids", json(""))};
}

/// Records the model calls for `items` (several calls when they hold more than one call's
/// bytes), pinned to `version` of `model`. Returns how many calls were enqueued. `fresh`:
/// none of the items has a row in httplog_unlabeled (httplog.capture's calls), so that
/// httplog.labeled need not look for one (the call's context says so).
caf::expected<size_t> enqueue_labels(call_context& ctx, transaction& txn, const std::string& model,
                                     uint32_t version, double threshold,
                                     const std::vector<label_item>& items, bool fresh) {
  size_t calls = 0;
  size_t i = 0;
  while (i < items.size()) {
    size_t bytes = 0, j = i;
    while (j < items.size()
           && (j == i || bytes + items[j].text.size() + 4 <= anomaly::max_call_bytes)) {
      bytes += items[j].text.size() + 4;
      ++j;
    }
    std::vector<std::string_view> texts;
    json ids = json::array(), rules = json::array();
    for (size_t k = i; k < j; ++k) {
      texts.push_back(items[k].text);
      ids.push_back(items[k].id);
      rules.push_back(json::array({items[k].rule_label, items[k].rule_ids}));
    }
    runtime::tensor_pack in;
    in.add_strings("requests", texts);
    runtime::outbox_call call;
    call.kind = runtime::piece_kind::infer;
    call.model = model;
    call.model_version = version;
    call.inputs = in.specs;
    call.result_procedure = "httplog.labeled";
    call.role = ctx.role.empty() ? "admin" : std::string{ctx.role};
    call.context = {{"ids", std::move(ids)},
                    {"rules", std::move(rules)},
                    {"model", model},
                    {"version", version},
                    {"threshold", threshold}};
    if (fresh)
      call.context["fresh"] = true;
    auto key = runtime::outbox::enqueue(ctx, txn, call,
                                        std::string_view{in.bytes.data(), in.bytes.size()});
    if (!key)
      return key.error();
    ++calls;
    i = j;
  }
  return calls;
}

/// The active version of `model`, or the reason there is none (as text).
caf::expected<std::pair<uint32_t, std::string>> pin(transaction& txn, const std::string& model) {
  auto v = runtime::model_store::active_version(txn, model);
  if (v)
    return std::pair<uint32_t, std::string>{*v, {}};
  if (is(v.error(), errc::bad_model))
    return std::pair<uint32_t, std::string>{0, describe(v.error())};
  return v.error();
}

caf::expected<json> capture(call_context& ctx, transaction& txn, const json& args) {
  auto model = opt_arg<std::string>(args, "model", "");
  auto threshold = opt_arg<double>(args, "threshold", 0.5);
  if (!(threshold >= 0.0 && threshold <= 1.0))
    return make_error(errc::invalid_argument, "httplog.capture: threshold outside [0, 1]");
  const auto& reqs = args.at("requests");
  if (!reqs.is_array())
    return make_error(errc::invalid_argument, "httplog.capture: 'requests' must be an array");
  size_t inserted = 0, duplicates = 0;
  std::vector<label_item> fresh;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& r = reqs[i];
    if (!r.is_object() || !r.contains("id") || !r["id"].is_string()
        || r["id"].get_ref<const std::string&>().empty())
      return make_error(errc::invalid_argument,
                        "httplog.capture: request " + std::to_string(i) + " has no string 'id'");
    auto id = r["id"].get<std::string>();
    auto have = txn.get_for_update(request_table, id);
    if (!have)
      return have.error();
    if (*have) { // a retried batch: this request is in already
      ++duplicates;
      continue;
    }
    json row = r;
    row.erase("id");
    // Its label was enqueued when it arrived (label_execution says by which call).
    bool label_sent = row.value("label_sent", false);
    row.erase("label_sent");
    row["capture_execution"] = ctx.execution_id;
    if (auto err = txn.insert_row(request_table, id, row))
      return err;
    ++inserted;
    if (!model.empty() && !label_sent)
      fresh.push_back(item_of(id, row));
  }
  // Labels of requests that arrived and whose rows come later (capture at arrival).
  std::vector<label_item> early;
  if (auto ls = args.find("labels"); ls != args.end() && !model.empty()) {
    if (!ls->is_array())
      return make_error(errc::invalid_argument, "httplog.capture: 'labels' must be an array");
    for (size_t i = 0; i < ls->size(); ++i) {
      const auto& l = (*ls)[i];
      if (!l.is_object() || !l.contains("id") || !l["id"].is_string() || !l.contains("text")
          || !l["text"].is_string())
        return make_error(errc::invalid_argument, "httplog.capture: label " + std::to_string(i)
                                                    + " has no string 'id' and 'text'");
      auto text = l["text"].get<std::string>();
      if (text.size() > model_text_bytes)
        text.resize(model_text_bytes);
      early.push_back({l["id"].get<std::string>(), std::move(text),
                       l.value("rule_label", json(0)), l.value("rule_ids", json(""))});
    }
  }
  json out{{"inserted", inserted},
           {"duplicates", duplicates},
           {"enqueued", 0},
           {"unlabeled", 0},
           {"labels_enqueued", 0},
           {"execution", ctx.execution_id}};
  if (fresh.empty() && early.empty())
    return out;
  auto version = pin(txn, model);
  if (!version)
    return version.error();
  if (!early.empty() && version->first != 0) {
    // No active version: the capture worker sends these rows without label_sent, and they
    // wait in httplog_unlabeled like any row (its text is read from the row then).
    auto calls = enqueue_labels(ctx, txn, model, version->first, threshold, early, true);
    if (!calls)
      return calls.error();
    out["labels_enqueued"] = early.size();
    out["enqueued"] = *calls;
  }
  if (fresh.empty())
    return out;
  if (version->first == 0) {
    for (auto& f : fresh)
      if (auto err = txn.put_row(unlabeled_table, f.id,
                                 json{{"reason", version->second}, {"attempts", 0}}))
        return err;
    out["unlabeled"] = fresh.size();
    out["reason"] = version->second;
    return out;
  }
  auto calls = enqueue_labels(ctx, txn, model, version->first, threshold, fresh, true);
  if (!calls)
    return calls.error();
  out["enqueued"] = out["enqueued"].get<size_t>() + *calls;
  return out;
}

/// Writes the labeled row of a request whose scoring failed `max_label_attempts` times.
caf::error write_failed(call_context& ctx, transaction& txn, const std::string& id, const json& req,
                        const std::string& why) {
  auto rule = req.value("rule_label", json(0));
  json row{{"request_id", id},
           {"score", nullptr},
           {"label", nullptr},
           {"threshold", nullptr},
           {"model", nullptr},
           {"model_version", nullptr},
           {"rule_label", rule},
           {"rule_ids", req.value("rule_ids", json(""))},
           {"combined_label", rule},
           {"error", why},
           {"labeled_ns", ctx.execution_id}};
  return txn.put_row(labeled_table, id, row);
}

caf::expected<json> label_pending(call_context& ctx, transaction& txn, const json& args) {
  auto model = arg<std::string>(args, "model");
  auto threshold = opt_arg<double>(args, "threshold", 0.5);
  auto limit = static_cast<size_t>(
    std::clamp<int64_t>(opt_arg<int64_t>(args, "limit", 256), 1, 4096));
  std::vector<std::pair<std::string, json>> waiting;
  if (auto err = txn.scan(unlabeled_table, "", "", [&](std::string_view k, std::string_view v) {
        auto row = json::from_msgpack(v, true, false);
        waiting.emplace_back(std::string{k}, row.is_discarded() ? json::object() : row);
        return waiting.size() < limit;
      }))
    return err;
  json out{
    {"enqueued", 0}, {"waiting", waiting.size()}, {"failed", 0}, {"execution", ctx.execution_id}};
  if (waiting.empty())
    return out;
  auto version = pin(txn, model);
  if (!version)
    return version.error();
  if (version->first == 0) {
    out["reason"] = version->second;
    return out;
  }
  std::vector<label_item> items;
  size_t failed = 0;
  for (auto& [id, w] : waiting) {
    auto again = txn.get_row_for_update(unlabeled_table, id);
    if (!again)
      return again.error();
    if (!*again)
      continue;
    auto req = txn.get_row(request_table, id);
    if (!req)
      return req.error();
    if (auto err = txn.del(unlabeled_table, id))
      return err;
    if (!*req)
      continue;
    if ((**again).value("attempts", 0) >= max_label_attempts) {
      if (auto err = write_failed(ctx, txn, id, **req, (**again).value("reason", "")))
        return err;
      ++failed;
      continue;
    }
    items.push_back(item_of(id, **req));
  }
  auto calls = enqueue_labels(ctx, txn, model, version->first, threshold, items, false);
  if (!calls)
    return calls.error();
  out["enqueued"] = items.size();
  out["failed"] = failed;
  return out;
}

caf::expected<json> labeled(call_context& ctx, transaction& txn, const json& args) {
  const auto& c = args.at("context");
  const auto& ids = c.at("ids");
  const auto& rules = c.at("rules");
  auto count = ids.size();
  auto requeue = [&](const std::string& why) -> caf::expected<json> {
    // Back to the waiting list; label_pending sends it again (or records the failure).
    for (const auto& id : ids) {
      auto key = id.get<std::string>();
      auto lrow = txn.get(labeled_table, key);
      if (!lrow)
        return lrow.error();
      if (*lrow)
        continue;
      auto w = txn.get_row_for_update(unlabeled_table, key);
      if (!w)
        return w.error();
      int attempts = *w ? (**w).value("attempts", 0) : 0;
      if (auto err = txn.put_row(unlabeled_table, key,
                                 json{{"reason", "scoring failed: " + why},
                                      {"attempts", attempts + 1}}))
        return err;
    }
    return json{{"labeled", 0}, {"error", why}};
  };
  if (auto e = args.find("error"); e != args.end())
    return requeue(e->is_string() ? e->get<std::string>() : e->dump());
  auto pack = runtime::result_tensors(args.at("result"));
  if (!pack)
    return requeue("the result's tensors: " + describe(pack.error()));
  auto views = pack->views();
  if (!views)
    return requeue("the result's tensors: " + describe(views.error()));
  const runtime::tensor_view* sc = nullptr;
  for (const auto& v : *views)
    if (v.spec->name == "score")
      sc = &v;
  if (!sc || sc->spec->type() != runtime::tensor_dtype::f32
      || sc->spec->numel() != static_cast<int64_t>(count))
    return requeue("the result does not hold \"score\" f32 [" + std::to_string(count) + "]");
  auto threshold = c.value("threshold", 0.5);
  // httplog.capture's calls (context "fresh") label requests that never waited for a model;
  // label_pending's, and calls enqueued before "fresh" existed, look for a waiting row.
  bool may_wait = !c.value("fresh", false);
  for (size_t i = 0; i < count; ++i) {
    float s = 0;
    std::memcpy(&s, sc->data + i * sizeof(float), sizeof(float));
    int label = s >= threshold ? 1 : 0;
    auto rule = rules.at(i).at(0);
    int rule_label = rule.is_number() ? rule.get<int>() : 0;
    auto id = ids.at(i).get<std::string>();
    json row{{"request_id", id},
             {"score", s},
             {"label", label},
             {"threshold", threshold},
             {"model", c.at("model")},
             {"model_version", c.at("version")},
             {"rule_label", rule_label},
             {"rule_ids", rules.at(i).at(1)},
             {"combined_label", label | rule_label},
             {"call", args.at("call")},
             {"labeled_ns", ctx.execution_id}};
    if (auto err = txn.put_row(labeled_table, id, row))
      return err;
    // Most requests never waited for a model: deleting their (absent) waiting row would still
    // log a change, and spool a DELETE, per request.
    if (!may_wait)
      continue;
    auto waiting = txn.get(unlabeled_table, id);
    if (!waiting)
      return waiting.error();
    if (*waiting)
      if (auto err = txn.del(unlabeled_table, id))
        return err;
  }
  return json{{"labeled", count}};
}

caf::expected<json> rows(call_context&, transaction& txn, const json& args) {
  auto which = opt_arg<std::string>(args, "table", "request");
  const char* table = which == "request"     ? request_table
                      : which == "labeled"   ? labeled_table
                      : which == "unlabeled" ? unlabeled_table
                                             : nullptr;
  if (!table)
    return make_error(errc::invalid_argument,
                      "httplog.rows: table '" + which + "' is none of request, labeled, unlabeled");
  auto after = opt_arg<std::string>(args, "after", "");
  auto limit = static_cast<size_t>(
    std::clamp<int64_t>(opt_arg<int64_t>(args, "limit", 100), 1, 1000));
  json out = json::array();
  std::string last;
  auto from = after.empty() ? std::string{} : after + std::string(1, '\0');
  if (auto err = txn.scan(table, from, "", [&](std::string_view k, std::string_view v) {
        auto row = json::from_msgpack(v, true, false);
        if (row.is_discarded())
          row = json::object();
        row["id"] = k;
        out.push_back(std::move(row));
        last = k;
        return out.size() < limit;
      }))
    return err;
  return json{{"rows", std::move(out)}, {"last", last}};
}

caf::expected<json> count(call_context&, transaction& txn, const json&) {
  json out = json::object();
  for (auto [name, table] : {std::pair{"requests", request_table},
                             {"labeled", labeled_table},
                             {"unlabeled", unlabeled_table}}) {
    size_t n = 0;
    if (auto err = txn.scan(table, "", "", [&](auto, auto) { return ++n, true; }))
      return err;
    out[name] = n;
  }
  return out;
}

} // namespace

std::string model_text(const json& row) {
  auto raw = row.value("raw", "");
  if (row.value("raw_encoding", "") == "base64") {
    auto bytes = base64_decode(raw);
    raw = bytes ? std::move(*bytes) : std::string{};
  }
  auto text = model_input(raw);
  if (text.size() > model_text_bytes)
    text.resize(model_text_bytes);
  return text;
}

std::string model_input(std::string_view raw) {
  // The header block runs from the end of the request line to the first empty line.
  auto line_end = raw.find("\r\n");
  if (line_end == std::string_view::npos)
    return std::string{raw};
  std::string out;
  out.reserve(raw.size());
  size_t pos = line_end + 2;
  out.append(raw.substr(0, pos));
  while (pos < raw.size()) {
    auto end = raw.find("\r\n", pos);
    if (end == std::string_view::npos || end == pos) {
      out.append(raw.substr(pos)); // the empty line and the body, or a cut header block
      break;
    }
    auto line = raw.substr(pos, end - pos);
    auto colon = line.find(':');
    auto name = colon == std::string_view::npos ? line : line.substr(0, colon);
    if (!iequals(name, "host") && !iequals(name, "x-nectar-trace"))
      out.append(raw.substr(pos, end + 2 - pos));
    pos = end + 2;
  }
  return out;
}

void register_httplog(runtime::procedure_registry& procs, std::vector<std::string> roles) {
  runtime::outbox::add_tables(procs);
  procs.add_table(request_table);
  procs.add_table(labeled_table);
  procs.add_table(unlabeled_table);
  runtime::procedure_options w;
  w.roles = roles;
  w.partition_by = "batch";
  // A batch: up to the capture worker's byte bound of raw requests as JSON text.
  w.max_args_bytes = 48u << 20;
  procs.add("httplog.capture", capture, w);
  runtime::procedure_options lp;
  lp.roles = roles;
  procs.add("httplog.label_pending", label_pending, lp);
  runtime::procedure_options r;
  r.roles = roles;
  r.read_only = true;
  procs.add("httplog.rows", rows, r);
  procs.add("httplog.count", count, r);
  runtime::procedure_options res;
  res.roles = roles;
  runtime::outbox::add_result_procedure(procs, "httplog.labeled", labeled, res);
}

} // namespace comb::nectar
