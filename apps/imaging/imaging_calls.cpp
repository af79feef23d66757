// The imaging app's outbox calls and their result procedures (see imaging_calls.hpp).
#include "apps/imaging/imaging_calls.hpp"

#include "apps/imaging/image_store.hpp"
#include "apps/imaging/label_store.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/model_store.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/pieces/tensor_spec.hpp"
#include "storage/transaction.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace comb::apps::imaging {

using nlohmann::json;
using runtime::arg;
using runtime::call_context;
using runtime::model_store;
using runtime::outbox;
using runtime::tensor_dtype;
using storage::transaction;

namespace {

// The comb_models row of a version (model_store's key: "<name>/<version, 10 digits>").
caf::expected<std::optional<json>> model_row(transaction& txn, const std::string& name,
                                             uint32_t version) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%010u", version);
  return txn.get_row(model_store::models_table, name + "/" + buf);
}

// The kind of a stored version: its row's "kind" when the store recorded one, else a guess
// from the images (28x28x1: mlp; 224x224x3: mobilenet_v2; other RGB: centernet).
caf::expected<std::string> model_kind(transaction& txn, const std::string& name, uint32_t version,
                                      const stored_image& first) {
  auto row = model_row(txn, name, version);
  if (!row)
    return row.error();
  if (*row && (**row).contains("kind") && (**row)["kind"].is_string())
    return (**row)["kind"].get<std::string>();
  if (first.width == 28 && first.height == 28 && first.channels == 1)
    return std::string{"mlp"};
  if (first.width == 224 && first.height == 224 && first.channels == 3)
    return std::string{"mobilenet_v2"};
  return std::string{"centernet"};
}

struct range_args {
  std::string dataset, model;
  int64_t from = 0, limit = 0;
};

caf::expected<range_args> read_range(const json& args, const char* proc) {
  range_args r;
  r.dataset = arg<std::string>(args, "dataset");
  r.model = arg<std::string>(args, "model");
  if (auto e = check_name(r.dataset, std::string{proc} + ": dataset"))
    return e;
  if (auto e = check_name(r.model, std::string{proc} + ": model"))
    return e;
  r.from = args.contains("from") ? arg<int64_t>(args, "from") : 0;
  r.limit = args.contains("limit") && !args["limit"].is_null() ? arg<int64_t>(args, "limit")
                                                               : int64_t{1} << 40;
  if (r.from < 0 || r.limit < 1)
    return make_error(errc::invalid_argument,
                      std::string{proc} + ": need from >= 0 and limit >= 1 (got from "
                        + std::to_string(r.from) + ", limit " + std::to_string(r.limit) + ")");
  return r;
}

// Which images a call covers, in its context: {from, count} when their indexes follow each
// other (a classify call's 1,200 MNIST images), else {indexes: [...]}.
void put_indexes(json& context, const std::vector<stored_image>& imgs) {
  auto from = imgs.front().index;
  bool contiguous = true;
  for (size_t i = 0; i < imgs.size() && contiguous; ++i)
    contiguous = imgs[i].index == from + int64_t(i);
  if (contiguous) {
    context["from"] = from;
    context["count"] = imgs.size();
    return;
  }
  json out = json::array();
  for (const auto& im : imgs)
    out.push_back(im.index);
  context["indexes"] = std::move(out);
}

// The image indexes of a call's context (either form of put_indexes).
caf::expected<std::vector<int64_t>> context_indexes(const json& context) {
  std::vector<int64_t> out;
  try {
    if (auto i = context.find("indexes"); i != context.end()) {
      for (const auto& v : *i)
        out.push_back(v.get<int64_t>());
      return out;
    }
    auto from = context.at("from").get<int64_t>();
    auto count = context.at("count").get<int64_t>();
    if (from < 0 || count < 0 || count > max_infer_images)
      return make_error(errc::invalid_argument, "the call's context covers images " + std::to_string(from)
                                                  + " + " + std::to_string(count));
    for (int64_t i = 0; i < count; ++i)
      out.push_back(from + i);
  } catch (const json::exception& e) {
    return make_error(errc::invalid_argument,
                      std::string{"the call's context does not name its images: "} + e.what());
  }
  return out;
}

// Enqueues an inference call over `imgs` and records it in imaging_calls.
caf::expected<json> enqueue_infer(call_context& ctx, transaction& txn, const range_args& r,
                                  const char* what, const char* result_proc, uint32_t version,
                                  const std::string& kind, runtime::tensor_pack pack,
                                  const std::vector<stored_image>& imgs, bool whole_block) {
  runtime::outbox_call c;
  c.kind = runtime::piece_kind::infer;
  c.model = r.model;
  c.model_version = version;
  c.result_procedure = result_proc;
  c.context = {{"dataset", r.dataset}, {"model", r.model}, {"kind", kind}};
  put_indexes(c.context, imgs);
  c.inputs = pack.specs;
  // A whole block goes as it is stored (pinned, not read here); else the packed pixels (no
  // copy for the dispatcher).
  auto key = whole_block ? outbox::enqueue_rows(ctx, txn, c, blocks_table,
                                                {block_key(r.dataset, imgs.front().index)})
                         : outbox::enqueue(ctx, txn, c, std::move(pack.bytes));
  if (!key)
    return key.error();
  json row{{"kind", what},
           {"dataset", r.dataset},
           {"model", r.model},
           {"version", version},
           {"images", imgs.size()},
           {"from", imgs.front().index},
           {"to", imgs.back().index},
           {"input", whole_block ? "block" : "rows"},
           {"state", "pending"}};
  if (auto e = txn.put_row(calls_table, *key, row))
    return e;
  return json{{"call", *key},
              {"images", imgs.size()},
              {"next", imgs.back().index + 1},
              {"version", version},
              {"kind", kind},
              {"input", whole_block ? "block" : "rows"}};
}

// What a primary inference procedure starts from: its arguments, the model's active version
// (the call is pinned to it), the images of one call (at most 1 MiB) and the model's kind
// (empty when no image is left). When the call's images are exactly one stored block that
// fits a call, `whole_block` is set and `imgs` hold no pixels: the call sends the block.
struct infer_input {
  range_args r;
  uint32_t version = 0;
  std::vector<stored_image> imgs;
  std::string kind;
  bool whole_block = false;
};

// The images of a block that starts at `from` and fits one call of at most `limit` images,
// without their pixels; empty when the images there are not such a block.
caf::expected<std::vector<stored_image>> block_at(transaction& txn, const std::string& dataset,
                                                  int64_t from, int64_t limit) {
  std::vector<stored_image> out;
  auto meta = read_image_meta(txn, dataset, from);
  if (!meta)
    return meta.error();
  if (!*meta)
    return out;
  const auto& m = **meta;
  auto n = m.block_count;
  if (m.block != from || n > limit || n > max_infer_images
      || uint64_t(n) * m.pixel_bytes() > max_infer_bytes)
    return out;
  out.reserve(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    stored_image im;
    im.index = from + i;
    im.width = m.width, im.height = m.height, im.channels = m.channels;
    im.block = from, im.block_count = n, im.offset = int64_t(m.pixel_bytes()) * i;
    out.push_back(std::move(im));
  }
  return out;
}

caf::expected<infer_input> read_infer_input(transaction& txn, const json& args, const char* proc) {
  infer_input in;
  auto r = read_range(args, proc);
  if (!r)
    return r.error();
  in.r = std::move(*r);
  auto ds = dataset_info(txn, in.r.dataset);
  if (!ds)
    return ds.error();
  auto version = model_store::active_version(txn, in.r.model);
  if (!version)
    return version.error();
  in.version = *version;
  auto block = block_at(txn, in.r.dataset, in.r.from, in.r.limit);
  if (!block)
    return block.error();
  if (!block->empty()) {
    in.imgs = std::move(*block);
    in.whole_block = true;
  } else {
    auto imgs = read_images(txn, in.r.dataset, in.r.from, std::min(in.r.limit, max_infer_images),
                            max_infer_bytes);
    if (!imgs)
      return imgs.error();
    in.imgs = std::move(*imgs);
  }
  if (in.imgs.empty())
    return in;
  auto kind = model_kind(txn, in.r.model, in.version, in.imgs.front());
  if (!kind)
    return kind.error();
  in.kind = std::move(*kind);
  return in;
}

caf::expected<json> classify(call_context& ctx, transaction& txn, const json& args) {
  auto in = read_infer_input(txn, args, "imaging.classify");
  if (!in)
    return in.error();
  if (in->imgs.empty())
    return json{{"images", 0}, {"next", in->r.from}, {"version", in->version}};
  const auto& r = in->r;
  const auto version = in->version;
  auto& imgs = in->imgs;
  const auto& kind = in->kind;
  runtime::tensor_pack pack;
  std::vector<uint8_t> bytes;
  auto n = static_cast<int64_t>(imgs.size());
  int w = 0, h = 0, c = 0;
  const char* name = nullptr;
  if (kind == "mlp")
    w = 28, h = 28, c = 1, name = "x";
  else if (kind == "mobilenet_v2")
    w = 224, h = 224, c = 3, name = "images";
  else
    return make_error(errc::unsupported, "imaging.classify: model '" + r.model + "' version "
                                           + std::to_string(version) + " is of kind " + kind
                                           + "; classify runs mlp and mobilenet_v2 models");
  for (const auto& im : imgs) {
    if (im.width != w || im.height != h || im.channels != c)
      return make_error(errc::invalid_argument,
                        "imaging.classify: image " + std::to_string(im.index) + " of '" + r.dataset
                          + "' is " + std::to_string(im.width) + "x" + std::to_string(im.height)
                          + "x" + std::to_string(im.channels) + "; " + kind + " takes "
                          + std::to_string(w) + "x" + std::to_string(h) + "x" + std::to_string(c)
                          + " (load images with --size " + std::to_string(w) + ")");
    if (!in->whole_block)
      bytes.insert(bytes.end(), im.pixels.begin(), im.pixels.end());
  }
  auto shape = kind == "mlp" ? std::vector<int64_t>{n, 784} : std::vector<int64_t>{n, h, w, c};
  if (in->whole_block)
    pack.specs.push_back(runtime::make_spec(name, tensor_dtype::u8, shape));
  else
    pack.add(name, tensor_dtype::u8, shape, bytes.data());
  return enqueue_infer(ctx, txn, r, "classify", "imaging.classified", version, kind,
                       std::move(pack), imgs, in->whole_block);
}

caf::expected<json> detect(call_context& ctx, transaction& txn, const json& args) {
  auto in = read_infer_input(txn, args, "imaging.detect");
  if (!in)
    return in.error();
  if (in->imgs.empty())
    return json{{"images", 0}, {"next", in->r.from}, {"version", in->version}};
  const auto& r = in->r;
  const auto version = in->version;
  auto& imgs = in->imgs;
  const auto& kind = in->kind;
  if (kind != "centernet")
    return make_error(errc::unsupported, "imaging.detect: model '" + r.model + "' is of kind "
                                           + kind + "; detect runs centernet models");
  // One batch holds images of one size: stop at the first that differs.
  const auto& first = imgs.front();
  std::vector<uint8_t> bytes;
  size_t same = 0;
  for (const auto& im : imgs) {
    if (im.width != first.width || im.height != first.height || im.channels != first.channels)
      break;
    if (im.channels != 3 || im.width % 32 != 0 || im.height % 32 != 0)
      return make_error(errc::invalid_argument,
                        "imaging.detect: image " + std::to_string(im.index) + " of '" + r.dataset
                          + "' is " + std::to_string(im.width) + "x" + std::to_string(im.height)
                          + "x" + std::to_string(im.channels)
                          + "; the detector takes RGB with sides that are multiples of 32 "
                            "(load images with --size 512)");
    if (!in->whole_block)
      bytes.insert(bytes.end(), im.pixels.begin(), im.pixels.end());
    ++same;
  }
  imgs.resize(same); // a block is of one size: all of it
  runtime::tensor_pack pack;
  std::vector<int64_t> shape{static_cast<int64_t>(same), first.height, first.width, 3};
  if (in->whole_block)
    pack.specs.push_back(runtime::make_spec("images", tensor_dtype::u8, shape));
  else
    pack.add("images", tensor_dtype::u8, shape, bytes.data());
  return enqueue_infer(ctx, txn, r, "detect", "imaging.detected", version, kind, std::move(pack),
                       imgs, in->whole_block);
}

// The tensor named `name` of a result, or invalid_argument naming what is missing.
caf::expected<runtime::tensor_view> output(const std::vector<runtime::tensor_view>& views,
                                           const char* name, tensor_dtype t) {
  for (const auto& v : views)
    if (v.spec->name == name) {
      if (v.spec->type() != t)
        return make_error(errc::invalid_argument, std::string{"result tensor '"} + name + "' is "
                                                    + v.spec->describe() + ", not "
                                                    + runtime::to_string(t));
      return v;
    }
  return make_error(errc::invalid_argument, std::string{"the result has no tensor '"} + name + "'");
}

// Marks a call done or failed in imaging_calls, with `extra` fields.
caf::error finish_call(transaction& txn, const std::string& call, const char* state,
                       const json& extra) {
  auto row = txn.get_row_for_update(calls_table, call);
  if (!row)
    return row.error();
  json r = *row ? **row : json::object();
  r["state"] = state;
  for (auto& [k, v] : extra.items())
    r[k] = v;
  return txn.put_row(calls_table, call, r);
}

// Runs `apply` on a successful result; a call that failed, or whose result `apply` cannot
// read, is recorded as failed with the reason (the result is still consumed, once).
template <class F>
caf::expected<json> on_result(transaction& txn, const json& args, F apply) {
  auto call = arg<std::string>(args, "call");
  if (auto e = args.find("error"); e != args.end()) {
    if (auto err = finish_call(txn, call, "failed", {{"error", *e}}))
      return err;
    return json{{"call", call}, {"state", "failed"}};
  }
  auto out = apply(call, args.at("result"), args.at("context"));
  if (!out) {
    if (auto err = finish_call(txn, call, "failed", {{"error", describe(out.error())}}))
      return err;
    return json{{"call", call}, {"state", "failed"}, {"error", describe(out.error())}};
  }
  if (auto err = finish_call(txn, call, "done", *out))
    return err;
  return json{{"call", call}, {"state", "done"}};
}

caf::expected<json> classified(call_context&, transaction& txn, const json& args) {
  return on_result(
    txn, args,
    [&](const std::string& call, const json& result, const json& context) -> caf::expected<json> {
      auto pack = runtime::result_tensors(result);
      if (!pack)
        return pack.error();
      auto views = pack->views();
      if (!views)
        return views.error();
      auto indexes = context_indexes(context);
      if (!indexes)
        return indexes.error();
      auto n = static_cast<int64_t>(indexes->size());
      auto labels = output(*views, "label", tensor_dtype::i32);
      if (!labels)
        return labels.error();
      if (labels->spec->numel() != n)
        return make_error(errc::invalid_argument,
                          "result tensor label holds " + std::to_string(labels->spec->numel())
                            + " labels for " + std::to_string(n) + " images");
      std::vector<float> scores(size_t(n), 0.f);
      auto lab = [&](int64_t i) {
        int32_t v;
        std::memcpy(&v, labels->data + i * 4, 4);
        return v;
      };
      if (auto s = output(*views, "score", tensor_dtype::f32); s && s->spec->numel() == n) {
        std::memcpy(scores.data(), s->data, size_t(n) * 4);
      } else if (auto p = output(*views, "probs", tensor_dtype::f32);
                 p && p->spec->shape.size() == 2 && p->spec->shape[0] == n) {
        auto k = p->spec->shape[1];
        for (int64_t i = 0; i < n; ++i)
          if (lab(i) >= 0 && lab(i) < k)
            std::memcpy(&scores[size_t(i)], p->data + (i * k + lab(i)) * 4, 4);
      }
      auto dataset = context.at("dataset").get<std::string>();
      auto model = context.at("model").get<std::string>();
      auto version = result.value("model_version", int64_t{0});
      auto digest = result.value("model_digest", std::string{});
      // One row for the call's images (label_store.hpp): one lock, one row change.
      label_row row;
      row.dataset = std::move(dataset);
      row.model = std::move(model);
      row.version = version;
      row.digest = std::move(digest);
      row.call = call;
      row.answers.resize(size_t(n));
      for (int64_t i = 0; i < n; ++i)
        row.answers[size_t(i)] = {(*indexes)[size_t(i)], lab(i),
                                  std::isfinite(scores[size_t(i)]) ? scores[size_t(i)] : 0.f};
      if (auto e = write_labels(txn, row))
        return e;
      return json{{"results", n}, {"result_version", version}};
    });
}

caf::expected<json> detected(call_context&, transaction& txn, const json& args) {
  return on_result(
    txn, args,
    [&](const std::string& call, const json& result, const json& context) -> caf::expected<json> {
      auto pack = runtime::result_tensors(result);
      if (!pack)
        return pack.error();
      auto views = pack->views();
      if (!views)
        return views.error();
      auto indexes = context_indexes(context);
      if (!indexes)
        return indexes.error();
      auto n = static_cast<int64_t>(indexes->size());
      auto boxes = output(*views, "boxes", tensor_dtype::f32);
      auto count = output(*views, "count", tensor_dtype::i32);
      if (!boxes || !count)
        return !boxes ? boxes.error() : count.error();
      const auto& bs = boxes->spec->shape;
      if (bs.size() != 3 || bs[0] != n || bs[2] != 6 || count->spec->numel() != n)
        return make_error(errc::invalid_argument, "result tensors " + boxes->spec->describe()
                                                    + " and " + count->spec->describe()
                                                    + " do not fit " + std::to_string(n)
                                                    + " images");
      auto dataset = context.at("dataset").get<std::string>();
      auto model = context.at("model").get<std::string>();
      auto version = result.value("model_version", int64_t{0});
      auto digest = result.value("model_digest", std::string{});
      for (int64_t i = 0; i < n; ++i) {
        int32_t k;
        std::memcpy(&k, count->data + i * 4, 4);
        k = std::clamp<int32_t>(k, 0, static_cast<int32_t>(bs[1]));
        json list = json::array();
        for (int32_t b = 0; b < k; ++b) {
          float v[6];
          std::memcpy(v, boxes->data + ((i * bs[1] + b) * 6) * 4, sizeof(v));
          list.push_back({v[0], v[1], v[2], v[3], v[4], static_cast<int>(v[5])});
        }
        auto index = (*indexes)[size_t(i)];
        json row{{"dataset", dataset},       {"index", index},   {"model", model},
                 {"version", version},       {"digest", digest}, {"count", k},
                 {"boxes", std::move(list)}, {"call", call}};
        if (auto e = txn.put_row(boxes_table, image_key(dataset, index) + "/" + model, row))
          return e;
      }
      return json{{"results", n}, {"result_version", version}};
    });
}

caf::expected<json> train(call_context& ctx, transaction& txn, const json& args) {
  auto r = read_range(args, "imaging.train");
  if (!r)
    return r.error();
  auto epochs = arg<int64_t>(args, "epochs");
  auto batch = arg<int64_t>(args, "batch");
  auto lr = arg<double>(args, "lr");
  auto seed = args.contains("seed") ? arg<int64_t>(args, "seed") : int64_t{1};
  if (epochs < 1 || epochs > 1000 || batch < 1 || batch > 65536 || !(lr > 0 && lr < 10))
    return make_error(errc::invalid_argument,
                      "imaging.train: need epochs in [1, 1000], batch in [1, 65536] and lr in "
                      "(0, 10)");
  auto latest = model_store::latest_version(txn, r->model);
  if (!latest)
    return latest.error();
  if (*latest == 0)
    return make_error(errc::not_found, "imaging.train: model '" + r->model
                                         + "' has no stored version to train from (store "
                                           "version 1 first; comb imaging train does)");
  // A trained version is stored where the model is kept, never in a mirror of it.
  auto latest_row = model_row(txn, r->model, *latest);
  if (!latest_row)
    return latest_row.error();
  if (*latest_row && (**latest_row).contains("mirror_of"))
    return make_error(errc::unsupported,
                      "imaging.train: model '" + r->model + "' is kept by node "
                        + (**latest_row).value("mirror_of", "")
                        + "; this node holds only a mirror of its active version and cannot "
                          "store its next version. Train it through node "
                        + (**latest_row).value("mirror_of", "")
                        + ", with the images stored there");
  auto imgs = read_images(txn, r->dataset, r->from, r->limit, max_train_bytes);
  if (!imgs)
    return imgs.error();
  if (imgs->empty())
    return make_error(errc::not_found, "imaging.train: no images in '" + r->dataset + "' from "
                                         + std::to_string(r->from));
  std::vector<uint8_t> x, y;
  for (const auto& im : *imgs) {
    if (im.width != 28 || im.height != 28 || im.channels != 1)
      return make_error(errc::invalid_argument, "imaging.train: image " + std::to_string(im.index)
                                                  + " of '" + r->dataset + "' is not 28x28x1");
    if (!im.label || *im.label < 0 || *im.label > 255)
      return make_error(errc::invalid_argument, "imaging.train: image " + std::to_string(im.index)
                                                  + " of '" + r->dataset
                                                  + "' has no label in 0..255");
    x.insert(x.end(), im.pixels.begin(), im.pixels.end());
    y.push_back(static_cast<uint8_t>(*im.label));
  }
  auto n = static_cast<int64_t>(imgs->size());
  json config{{"epochs", epochs}, {"batch", batch}, {"lr", lr}, {"seed", seed}};
  auto config_text = config.dump();
  runtime::tensor_pack pack;
  pack.add("x", tensor_dtype::u8, {n, 784}, x.data());
  pack.add("y", tensor_dtype::u8, {n}, y.data());
  pack.add_strings("config", {std::string_view{config_text}});
  runtime::outbox_call c;
  c.kind = runtime::piece_kind::train;
  c.model = r->model;
  c.model_version = *latest;
  c.result_procedure = "imaging.trained";
  auto from = imgs->front().index, to = imgs->back().index;
  c.context = {{"dataset", r->dataset}, {"model", r->model}, {"trained_from", *latest},
               {"from", from},          {"to", to},          {"rows", n},
               {"config", config}};
  c.inputs = pack.specs;
  auto key = outbox::enqueue(ctx, txn, c, std::move(pack.bytes)); // no copy for the dispatcher
  if (!key)
    return key.error();
  json row{{"kind", "train"},   {"dataset", r->dataset},
           {"model", r->model}, {"trained_from", *latest},
           {"images", n},       {"from", from},
           {"to", to},          {"config", config},
           {"state", "pending"}};
  if (auto e = txn.put_row(calls_table, *key, row))
    return e;
  return json{{"call", *key}, {"trained_from", *latest}, {"rows", n}, {"from", from}, {"to", to}};
}

caf::expected<json> trained(call_context& ctx, transaction& txn, const json& args) {
  return on_result(
    txn, args,
    [&](const std::string& call, const json& result, const json& context) -> caf::expected<json> {
      auto pack = runtime::result_tensors(result);
      if (!pack)
        return pack.error();
      auto views = pack->views();
      if (!views)
        return views.error();
      auto model_t = output(*views, "model", tensor_dtype::u8);
      if (!model_t)
        return model_t.error();
      json losses = json::array();
      if (auto l = output(*views, "loss", tensor_dtype::f32); l)
        for (int64_t i = 0; i < l->spec->numel(); ++i) {
          float v;
          std::memcpy(&v, l->data + i * 4, 4);
          losses.push_back(std::isfinite(v) ? json(v) : json(nullptr));
        }
      auto model = context.at("model").get<std::string>();
      auto latest = model_store::latest_version(txn, model);
      if (!latest)
        return latest.error();
      auto version = *latest + 1;
      json extra{{"trained_from", context.at("trained_from")},
                 {"dataset", context.at("dataset")},
                 {"rows_from", context.at("from")},
                 {"rows_to", context.at("to")},
                 {"rows", context.at("rows")},
                 {"config", context.at("config")},
                 {"call", call},
                 {"losses", losses}};
      auto stored = model_store::store_version(ctx, txn, model, version,
                                               std::string_view{model_t->data, model_t->size},
                                               extra);
      if (!stored)
        return stored.error();
      auto act = model_store::enqueue_activation(ctx, txn, model, version);
      if (!act)
        return act.error();
      return json{{"version", version},
                  {"losses", losses},
                  {"trained_on", result.value("model_version", int64_t{0})}};
    });
}

caf::expected<json> call_row(call_context&, transaction& txn, const json& args) {
  auto call = arg<std::string>(args, "call");
  auto row = txn.get_row(calls_table, call);
  if (!row)
    return row.error();
  if (!*row)
    return make_error(errc::not_found, "imaging.call: no imaging call '" + call + "'");
  auto out = **row;
  out["call"] = call;
  return out;
}

// imaging.pending: the calls of a model that have no result yet, in key (time) order.
caf::expected<json> pending(call_context&, transaction& txn, const json& args) {
  auto model = arg<std::string>(args, "model");
  json out = json::array();
  caf::error bad;
  auto err = txn.scan(calls_table, "", "", [&](std::string_view k, std::string_view v) {
    auto row = json::from_msgpack(v, true, false);
    if (row.is_discarded() || !row.is_object()) {
      bad = make_error(errc::corrupt_data,
                       "unreadable row '" + std::string{k} + "' of " + calls_table);
      return false;
    }
    if (row.value("model", "") == model && row.value("state", "") == "pending") {
      row["call"] = std::string{k};
      out.push_back(std::move(row));
    }
    return true;
  });
  if (err || bad)
    return err ? err : bad;
  return out;
}

} // namespace

void register_calls(runtime::procedure_registry& procs) {
  runtime::outbox::add_tables(procs);
  procs.add_table(calls_table);
  // Run where the images are (the node that receives the call); on a cluster, the gateway
  // mirrors the model there when another node holds it (runtime::model_store).
  procs.add("imaging.classify", classify, {.roles = {"admin"}, .model_arg = "model"});
  procs.add("imaging.detect", detect, {.roles = {"admin"}, .model_arg = "model"});
  procs.add("imaging.train", train, {.roles = {"admin"}, .model_arg = "model"});
  procs.add("imaging.call", call_row, {.roles = {"*"}, .read_only = true});
  procs.add("imaging.pending", pending, {.roles = {"*"}, .read_only = true});
  runtime::outbox::add_result_procedure(procs, "imaging.classified", classified);
  runtime::outbox::add_result_procedure(procs, "imaging.detected", detected);
  runtime::outbox::add_result_procedure(procs, "imaging.trained", trained);
}

} // namespace comb::apps::imaging
