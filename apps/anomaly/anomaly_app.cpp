// The anomaly app's stored procedures: anomaly.score, its result procedure anomaly.scored,
// and anomaly.results (see anomaly_app.hpp).
#include "apps/anomaly/anomaly_app.hpp"

#include "apps/anomaly/anomaly_runner.hpp"
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/model_store.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/pieces/tensor_spec.hpp"
#include "storage/transaction.hpp"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>

namespace comb::anomaly {

using nlohmann::json;
using runtime::arg;
using runtime::call_context;
using storage::transaction;

namespace {

constexpr const char* requests_table = "anomaly_requests";
constexpr const char* scores_table = "anomaly_scores";
constexpr const char* calls_table = "anomaly_calls";

std::string hex16(uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

/// ".<index as 8 digits>", the end of a request's id.
std::string index_suffix(size_t index) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), ".%08zu", index);
  return buf;
}

/// The key of model `name` version `version` in model_store::models_table.
std::string model_key(const std::string& name, uint32_t version) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%010u", version);
  return name + "/" + buf;
}

/// Text as a JSON string when it is UTF-8, as bytes otherwise (JSON text cannot hold it).
json text_or_bytes(const std::string& s) {
  if (is_utf8(s))
    return s;
  return json::binary(std::vector<uint8_t>(s.begin(), s.end()));
}

caf::expected<json> score(call_context& ctx, transaction& txn, const json& args) {
  auto model = arg<std::string>(args, "model");
  auto source = args.is_object() && args.contains("source") ? arg<std::string>(args, "source")
                                                            : std::string{};
  // No threshold given: the model's own (saved with it, calibrated), applied when scored.
  auto threshold = args.is_object() && args.contains("threshold") ? arg<double>(args, "threshold")
                                                                  : -1.0;
  auto encoding = args.is_object() && args.contains("encoding") ? arg<std::string>(args, "encoding")
                                                                : std::string{"text"};
  if (encoding != "text" && encoding != "base64")
    return make_error(errc::invalid_argument,
                      "anomaly.score: encoding '" + encoding + "' is neither 'text' nor 'base64'");
  if (!(threshold >= 0.0 && threshold <= 1.0) && threshold != -1.0)
    return make_error(errc::invalid_argument, "anomaly.score: threshold "
                                                + std::to_string(threshold) + " is outside [0, 1]");
  auto texts = arg<std::vector<json>>(args, "requests");
  if (texts.empty())
    return make_error(errc::invalid_argument, "anomaly.score: 'requests' is empty");
  std::vector<std::string> reqs;
  reqs.reserve(texts.size());
  size_t bytes = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!texts[i].is_string())
      return make_error(errc::invalid_argument, "anomaly.score: request " + std::to_string(i)
                                                  + " is a " + texts[i].type_name()
                                                  + ", not a string");
    auto& t = texts[i].get_ref<const std::string&>();
    if (encoding == "base64") {
      auto raw = base64_decode(t);
      if (!raw)
        return make_error(errc::invalid_argument, "anomaly.score: request " + std::to_string(i)
                                                    + ": " + describe(raw.error()));
      reqs.push_back(std::move(*raw));
    } else {
      reqs.push_back(t);
    }
    bytes += reqs.back().size() + 4;
    if (bytes > max_call_bytes)
      return make_error(errc::too_large, "anomaly.score: " + std::to_string(texts.size())
                                           + " requests hold more than the "
                                           + std::to_string(max_call_bytes >> 20)
                                           + " MiB one call carries (request " + std::to_string(i)
                                           + " passes it); send them in several calls");
  }
  // Pin the model's active version, and name its digest in every score.
  auto version = runtime::model_store::active_version(txn, model);
  if (!version)
    return version.error();
  auto mrow = txn.get_row(runtime::model_store::models_table, model_key(model, *version));
  if (!mrow)
    return mrow.error();
  auto digest = *mrow ? (**mrow).value("digest", "") : std::string{};
  runtime::tensor_pack in;
  in.add_strings("requests", std::vector<std::string_view>(reqs.begin(), reqs.end()));
  auto exec = hex16(ctx.execution_id);
  runtime::outbox_call call;
  call.kind = runtime::piece_kind::infer;
  call.model = model;
  call.model_version = *version;
  call.inputs = in.specs;
  call.result_procedure = "anomaly.scored";
  call.role = ctx.role.empty() ? "admin" : std::string{ctx.role};
  call.context = {{"execution", exec},   {"count", reqs.size()}, {"model", model},
                  {"version", *version}, {"digest", digest},     {"threshold", threshold}};
  auto key = runtime::outbox::enqueue(ctx, txn, call,
                                      std::string_view{in.bytes.data(), in.bytes.size()});
  if (!key)
    return key.error();
  for (size_t i = 0; i < reqs.size(); ++i) {
    json row{{"raw", text_or_bytes(reqs[i])},
             {"source", source},
             {"received_ns", ctx.execution_id},
             {"call", *key}};
    if (auto err = txn.insert_row(requests_table, request_id(ctx.execution_id, i), row))
      return err;
  }
  json crow = call.context;
  crow["status"] = "pending";
  if (auto err = txn.insert_row(calls_table, *key, crow))
    return err;
  return json{{"call", *key},   {"execution", exec},   {"count", reqs.size()},
              {"model", model}, {"version", *version}, {"digest", digest}};
}

/// Marks the call failed with `why` (the requests stay unscored).
caf::expected<json> fail_call(transaction& txn, const std::string& key, json crow,
                              const std::string& why) {
  crow["status"] = "failed";
  crow["error"] = why;
  if (auto err = txn.put_row(calls_table, key, crow))
    return err;
  return json{{"scored", 0}, {"error", why}};
}

caf::expected<json> scored(call_context&, transaction& txn, const json& args) {
  auto key = arg<std::string>(args, "call");
  const auto& c = args.at("context");
  auto crow = txn.get_row_for_update(calls_table, key);
  if (!crow)
    return crow.error();
  json row = *crow ? **crow : c;
  if (auto e = args.find("error"); e != args.end())
    return fail_call(txn, key, row, e->is_string() ? e->get<std::string>() : e->dump());
  auto count = c.at("count").get<size_t>();
  auto pack = runtime::result_tensors(args.at("result"));
  if (!pack)
    return fail_call(txn, key, row, "the result's tensors: " + describe(pack.error()));
  auto views = pack->views();
  if (!views)
    return fail_call(txn, key, row, "the result's tensors: " + describe(views.error()));
  const runtime::tensor_view* sc = nullptr;
  const runtime::tensor_view* pa = nullptr;
  const runtime::tensor_view* th = nullptr;
  for (const auto& v : *views) {
    if (v.spec->name == "score")
      sc = &v;
    else if (v.spec->name == "parsed")
      pa = &v;
    else if (v.spec->name == "threshold")
      th = &v;
  }
  auto fits = [&](const runtime::tensor_view* v, runtime::tensor_dtype t) {
    return v && v->spec->type() == t && v->spec->numel() == static_cast<int64_t>(count);
  };
  if (!fits(sc, runtime::tensor_dtype::f32) || !fits(pa, runtime::tensor_dtype::u8))
    return fail_call(txn, key, row,
                     "the result does not hold \"score\" f32 [" + std::to_string(count)
                       + "] and \"parsed\" u8 [" + std::to_string(count) + "] (it has "
                       + (sc ? sc->spec->describe() : std::string{"no score"}) + ", "
                       + (pa ? pa->spec->describe() : std::string{"no parsed"}) + ")");
  auto threshold = c.value("threshold", -1.0);
  if (threshold < 0) {
    // The model's saved threshold when its runner gives one (files before it: 0.5).
    threshold = 0.5;
    if (th && th->spec->type() == runtime::tensor_dtype::f32 && th->spec->numel() == 1) {
      float t = 0;
      std::memcpy(&t, th->data, sizeof t);
      threshold = t;
    }
  }
  auto exec = c.at("execution").get<std::string>();
  for (size_t i = 0; i < count; ++i) {
    float s = 0;
    std::memcpy(&s, sc->data + i * sizeof(float), sizeof(float));
    bool parsed = pa->data[i] != 0;
    json srow{{"score", s},
              {"label", s >= threshold ? "anomalous" : "normal"},
              {"parsed", parsed},
              {"model", c.at("model")},
              {"version", c.at("version")},
              {"digest", c.at("digest")},
              {"call", key}};
    if (auto err = txn.put_row(scores_table, exec + index_suffix(i), srow))
      return err;
  }
  row["status"] = "scored";
  if (auto err = txn.put_row(calls_table, key, row))
    return err;
  return json{{"scored", count}};
}

/// A score row as anomaly.results gives it.
json score_entry(std::string_view id, json row) {
  row["id"] = id;
  return row;
}

caf::expected<json> results(call_context&, transaction& txn, const json& args) {
  json out{{"scores", json::array()}, {"pending", json::array()}};
  if (args.is_object() && args.contains("call")) {
    auto key = arg<std::string>(args, "call");
    auto crow = txn.get_row(calls_table, key);
    if (!crow)
      return crow.error();
    if (!*crow)
      return make_error(errc::not_found, "anomaly.results: no anomaly.score call '" + key + "'");
    auto exec = (**crow).value("execution", "");
    auto count = (**crow).value("count", size_t{0});
    out["status"] = (**crow).value("status", "");
    if ((**crow).contains("error"))
      out["error"] = (**crow)["error"];
    std::vector<bool> seen(count, false);
    if (auto err = txn.scan(scores_table, exec + ".", exec + "/",
                            [&](std::string_view k, std::string_view v) {
                              auto row = json::from_msgpack(v, true, false);
                              if (!row.is_discarded())
                                out["scores"].push_back(score_entry(k, std::move(row)));
                              auto tail = k.substr(exec.size() + 1);
                              size_t i = count;
                              std::from_chars(tail.data(), tail.data() + tail.size(), i);
                              if (i < count)
                                seen[i] = true;
                              return true;
                            }))
      return err;
    for (size_t i = 0; i < count; ++i)
      if (!seen[i])
        out["pending"].push_back(exec + index_suffix(i));
    return out;
  }
  if (!args.is_object() || !args.contains("ids"))
    return make_error(errc::invalid_argument,
                      "anomaly.results takes {\"call\": KEY} or {\"ids\": [ID...]}");
  for (const auto& id : arg<std::vector<std::string>>(args, "ids")) {
    auto row = txn.get_row(scores_table, id);
    if (!row)
      return row.error();
    if (*row) {
      out["scores"].push_back(score_entry(id, std::move(**row)));
      continue;
    }
    auto req = txn.get(requests_table, id);
    if (!req)
      return req.error();
    if (!*req)
      return make_error(errc::not_found, "anomaly.results: no request '" + id + "'");
    out["pending"].push_back(id);
  }
  return out;
}

} // namespace

bool is_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
    if (n == 9 || i + n >= s.size())
      return false;
    uint32_t cp = n == 0 ? c : c & (0x3f >> n);
    for (size_t j = 1; j <= n; ++j) {
      auto d = static_cast<unsigned char>(s[i + j]);
      if ((d >> 6) != 2)
        return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr uint32_t min_cp[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return false;
    i += n + 1;
  }
  return true;
}

std::string request_id(uint64_t execution_id, size_t index) {
  return hex16(execution_id) + index_suffix(index);
}

void register_anomaly(runtime::procedure_registry& procs, std::vector<std::string> roles) {
  runtime::outbox::add_tables(procs);
  procs.add_table(requests_table);
  procs.add_table(scores_table);
  procs.add_table(calls_table);
  runtime::procedure_options w;
  w.roles = roles;
  // A MiB of requests as JSON text: escapes, or base64, make it longer.
  w.max_args_bytes = 8 * max_call_bytes;
  runtime::procedure_options scoring = w;
  scoring.model_arg = "model"; // on a cluster, mirrored to the node that scores (gateway)
  procs.add("anomaly.score", score, scoring);
  runtime::procedure_options r;
  r.roles = roles;
  r.read_only = true;
  procs.add("anomaly.results", results, r);
  runtime::procedure_options res;
  res.roles = roles;
  runtime::outbox::add_result_procedure(procs, "anomaly.scored", scored, res);
}

} // namespace comb::anomaly
