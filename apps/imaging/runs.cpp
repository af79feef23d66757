// Classify, detect and train runs against a node (see runs.hpp).
#include "apps/imaging/runs.hpp"

#include "base/base64.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/model_store.hpp"

#include <fstream>
#include <sstream>
#include <thread>

namespace comb::apps::imaging {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

caf::expected<json> wait_call(const procedure_caller& call, const std::string& key, deadline until,
                              const progress_fn& progress) {
  auto t0 = std::chrono::steady_clock::now();
  auto next_note = t0 + 10s;
  for (;;) {
    auto r = call("imaging.call", {{"call", key}});
    if (!r)
      return r.error();
    auto state = r->value("state", "");
    if (state == "done")
      return r;
    if (state == "failed")
      return make_error(errc::procedure_failed,
                        "call " + key + " failed: " + r->value("error", json{}).dump());
    if (std::chrono::steady_clock::now() > until)
      return make_error(errc::timeout, "call " + key + " (" + r->value("kind", "")
                                         + ") has no result yet; it stays in the outbox and "
                                           "completes once the compute process answers");
    if (progress && std::chrono::steady_clock::now() > next_note) {
      next_note += 10s;
      progress("call " + key + " (" + r->value("kind", "") + "): waiting for its result, "
               + std::to_string(static_cast<int>(seconds_since(t0))) + " s");
    }
    std::this_thread::sleep_for(100ms);
  }
}

caf::expected<std::vector<json>> model_versions(const procedure_caller& call,
                                                const std::string& model) {
  auto r = call("comb.model.list", json::object());
  if (!r)
    return r.error();
  std::vector<json> out;
  for (const auto& m : *r)
    if (m.value("name", "") == model)
      out.push_back(m);
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return a.value("version", 0) < b.value("version", 0);
  });
  return out;
}

caf::error put_model(const procedure_caller& call, const std::string& model, uint32_t version,
                     const std::string& bytes) {
  const auto chunk = runtime::model_store::chunk_size;
  size_t chunks = 0;
  for (size_t off = 0; off < bytes.size() || chunks == 0; off += chunk) {
    auto n = std::min(chunk, bytes.size() - off);
    auto r = call("comb.model.put_chunk",
                  {{"name", model},
                   {"version", version},
                   {"chunk_no", chunks},
                   {"data", base64_encode(std::string_view{bytes}.substr(off, n))}});
    if (!r)
      return std::move(r.error());
    ++chunks;
    if (off + n >= bytes.size())
      break;
  }
  auto r = call("comb.model.put", {{"name", model},
                                   {"version", version},
                                   {"chunk_count", chunks},
                                   {"digest", runtime::model_digest(bytes.data(), bytes.size())}});
  if (!r)
    return std::move(r.error());
  return {};
}

caf::error wait_active(const procedure_caller& call, const std::string& model, uint32_t version,
                       bool activate, deadline until, const progress_fn& progress) {
  if (activate) {
    auto r = call("comb.model.activate", {{"name", model}, {"version", version}});
    if (!r)
      return std::move(r.error());
  }
  auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    auto vs = model_versions(call, model);
    if (!vs)
      return std::move(vs.error());
    for (const auto& v : *vs) {
      if (v.value("version", 0u) != version)
        continue;
      if (v.contains("load_error") && !v["load_error"].is_null())
        return make_error(errc::bad_model, "model '" + model + "' version "
                                             + std::to_string(version)
                                             + " failed to load: " + v["load_error"].dump());
    }
    for (const auto& v : *vs)
      if (v.value("version", 0u) == version && v.value("active", false)) {
        if (progress)
          progress(model + " version " + std::to_string(version) + " active (loaded in "
                   + std::to_string(seconds_since(t0)).substr(0, 4) + " s)");
        return {};
      }
    if (std::chrono::steady_clock::now() > until)
      return make_error(errc::timeout, "model '" + model + "' version " + std::to_string(version)
                                         + " did not become active in time (is the node "
                                           "started with --compute?)");
    std::this_thread::sleep_for(100ms);
  }
}

caf::expected<dataset_run> run_dataset(const procedure_caller& call, const std::string& proc,
                                       const std::string& dataset, const std::string& model,
                                       deadline until, const progress_fn& progress) {
  auto t0 = std::chrono::steady_clock::now();
  auto ds = call("imaging.dataset", {{"dataset", dataset}});
  if (!ds)
    return ds.error();
  auto count = ds->value("count", int64_t{0});
  dataset_run run;
  std::vector<std::string> calls;
  for (int64_t from = 0; from < count;) {
    auto r = call(proc, {{"dataset", dataset}, {"model", model}, {"from", from}});
    if (!r)
      return r.error();
    if (r->value("images", int64_t{0}) == 0)
      break;
    calls.push_back(r->at("call").get<std::string>());
    run.images += r->value("images", int64_t{0});
    from = r->value("next", count);
  }
  run.calls = static_cast<int64_t>(calls.size());
  if (progress)
    progress(dataset + ": " + std::to_string(run.images) + " images in " + std::to_string(run.calls)
             + " calls to " + model);
  size_t done = 0;
  for (const auto& key : calls) {
    auto r = wait_call(call, key, until, progress);
    if (!r)
      return r.error();
    ++done;
    if (progress && (done % 10 == 0 || done == calls.size()) && calls.size() > 1)
      progress(dataset + ": " + std::to_string(done) + " / " + std::to_string(calls.size())
               + " calls answered");
  }
  auto res = call("imaging.results", {{"dataset", dataset}, {"model", model}});
  if (!res)
    return res.error();
  run.results = std::move(*res);
  run.seconds = seconds_since(t0);
  return run;
}

caf::expected<std::vector<train_round>> train_rounds(const procedure_caller& call,
                                                     const train_options& o, deadline until,
                                                     const progress_fn& progress) {
  auto vs = model_versions(call, o.model);
  if (!vs)
    return vs.error();
  if (vs->empty()) {
    auto file = runtime::make_mlp_file(o.sizes, o.seed);
    if (!file)
      return file.error();
    if (auto e = put_model(call, o.model, 1, *file))
      return e;
    if (progress)
      progress(o.model + ": stored version 1 (randomly initialised MLP)");
    vs = model_versions(call, o.model);
    if (!vs)
      return vs.error();
  }
  // A train call of an earlier run that was stopped (or killed) is still in the outbox: its
  // version comes first, so that this run resumes from it instead of training beside it.
  auto earlier = call("imaging.pending", {{"model", o.model}});
  if (!earlier)
    return earlier.error();
  for (const auto& p : *earlier) {
    if (p.value("kind", "") != "train")
      continue;
    if (progress)
      progress("waiting for train call " + p.value("call", "") + " of an earlier run");
    auto done = wait_call(call, p.value("call", ""), until, progress);
    if (!done && !is(done.error(), errc::procedure_failed))
      return done.error();
    vs = model_versions(call, o.model);
    if (!vs)
      return vs.error();
  }
  // Training starts from the latest version, which the compute process must hold: activate
  // it when an earlier run stopped before it was (a killed round resumes from there).
  // (A version whose activation is already recorded, e.g. by imaging.trained, is waited for.)
  if (!vs->empty() && !vs->back().value("active", false))
    if (auto e = wait_active(call, o.model, vs->back().value("version", 0u),
                             /*activate=*/!vs->back().contains("activation"), until, progress))
      return e;
  std::vector<train_round> out;
  for (int64_t round = 0; round < o.rounds; ++round) {
    auto t0 = std::chrono::steady_clock::now();
    json args{{"dataset", o.dataset}, {"model", o.model}, {"epochs", o.epochs},
              {"batch", o.batch},     {"lr", o.lr},       {"seed", o.seed + uint64_t(round)},
              {"from", o.from}};
    if (o.limit > 0)
      args["limit"] = o.limit;
    auto r = call("imaging.train", args);
    if (!r)
      return r.error();
    auto key = r->at("call").get<std::string>();
    train_round tr;
    tr.trained_from = r->value("trained_from", int64_t{0});
    tr.rows = r->value("rows", int64_t{0});
    if (progress)
      progress("round " + std::to_string(round + 1) + "/" + std::to_string(o.rounds)
               + ": training version " + std::to_string(tr.trained_from) + " on "
               + std::to_string(tr.rows) + " rows of " + o.dataset + " (call " + key + ")");
    auto done = wait_call(call, key, until, progress);
    if (!done)
      return done.error();
    tr.version = done->value("version", int64_t{0});
    tr.losses = done->value("losses", json::array());
    if (auto e = wait_active(call, o.model, static_cast<uint32_t>(tr.version),
                             /*activate=*/false, until, nullptr))
      return e;
    tr.seconds = seconds_since(t0);
    if (progress)
      progress("round " + std::to_string(round + 1) + ": version " + std::to_string(tr.version)
               + " stored and active, losses " + tr.losses.dump() + ", "
               + std::to_string(tr.seconds).substr(0, 5) + " s");
    out.push_back(std::move(tr));
  }
  return out;
}

caf::expected<std::vector<answer>> answers(const procedure_caller& call, const std::string& dataset,
                                           const std::string& model, int64_t count) {
  std::vector<answer> out;
  for (int64_t from = 0; from < count; from += 1000) {
    auto r = call("imaging.labels", {{"dataset", dataset}, {"from", from}, {"limit", 1000}});
    if (!r)
      return r.error();
    for (const auto& e : *r)
      for (const auto& a : e.value("answers", json::array()))
        if (a.value("model", "") == model) {
          answer x;
          x.index = e.value("index", int64_t{0});
          x.name = e.value("name", "");
          x.truth = e.value("label", -1);
          x.label = a.value("label", -1);
          x.score = a.value("score", 0.0);
          x.version = a.value("version", int64_t{0});
          out.push_back(std::move(x));
        }
  }
  return out;
}

caf::expected<std::vector<std::string>> read_class_names(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return make_error(errc::not_found, "cannot open class names '" + path + "'");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    out.push_back(line);
  }
  return out;
}

} // namespace comb::apps::imaging
