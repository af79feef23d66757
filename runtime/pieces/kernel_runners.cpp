// comb::runtime kernel runners: "mlp", "mobilenet_v2" and "centernet" over comb::kernels.
// Each runner checks a file fully (every tensor's dtype and shape) before load builds the
// model on a backend: the CPU backend runs the models' fast CPU paths, a CUDA backend the
// backend-tensor paths. A batch's tasks are checked one by one (a bad task gets its own
// error); the valid ones run together and their outputs are split back per task.
#include "runtime/pieces/kernel_runners.hpp"

#include "base/errc.hpp"
#include "kernels/cpu_backend.hpp"
#include "kernels/models/centernet.hpp"
#include "kernels/models/mlp.hpp"
#include "kernels/models/mobilenet_v2.hpp"
#include "kernels/safetensors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <random>

namespace comb::runtime {

namespace {

using kernels::tensor;

/// 407050 -> "407,050".
std::string with_commas(int64_t v) {
  auto s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string shape_text(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + "]";
}

/// A backend the process owns for its whole life, as the shared_ptr mlp::create takes.
std::shared_ptr<kernels::backend> unowned(kernels::backend& be) {
  return std::shared_ptr<kernels::backend>(std::shared_ptr<kernels::backend>{}, &be);
}

/// The backend a vision model runs on: `be`, when a one-image probe through its ops works;
/// else the CPU backend (the runtime degrades to the CPU rather than refusing the model, and
/// says so on stderr: e.g. a cuDNN without asymmetric "same" padding for a TFLite graph).
template <class Probe>
kernels::backend& probed(const std::string& kind, kernels::backend& be, const int64_t side,
                         Probe&& probe) {
  if (be.device() == kernels::device::cpu)
    return be;
  auto x = tensor::make(kernels::shape{1, side, side, 3}, kernels::dtype::f32, be.device());
  caf::error err = x ? probe(*x) : x.error();
  if (!err)
    return be;
  std::fprintf(stderr, "comb: %s on %s: %s; running it on the CPU\n", kind.c_str(),
               be.name().c_str(), describe(err).c_str());
  return kernels::cpu();
}

/// "task 7: " for per-task errors.
std::string task_prefix(const task_tensors& t) {
  return "task " + std::to_string(t.task_id) + ": ";
}

/// The tensor `name` of a task, or errc::invalid_argument naming what the task has.
caf::expected<tensor_view> input_of(const task_tensors& t, const std::vector<tensor_view>& views,
                                    const std::string& kind, const std::string& name) {
  for (auto& v : views)
    if (v.spec->name == name)
      return v;
  std::string has;
  for (auto& v : views)
    has += (has.empty() ? "" : ", ") + v.spec->describe();
  return make_error(errc::invalid_argument, task_prefix(t) + kind + " needs an input tensor '"
                                              + name + "' (the task has "
                                              + (has.empty() ? std::string{"none"} : has) + ")");
}

caf::expected<kernels::safetensors_file> decode_file(std::string_view bytes,
                                                     const std::string& kind) {
  auto file = kernels::decode_safetensors(bytes);
  if (!file)
    return make_error(errc::bad_model, kind + " file does not decode: " + describe(file.error()));
  return file;
}

/// Checks that `file` holds tensor `name` as f32 of `dims`.
caf::error expect_tensor(const kernels::safetensors_file& file, const std::string& kind,
                         const std::string& name, const std::vector<int64_t>& dims) {
  auto i = file.tensors.find(name);
  if (i == file.tensors.end())
    return make_error(errc::bad_model, kind + " file: tensor " + name + " missing (expected f32"
                                         + shape_text(dims) + ")");
  if (i->second.dtype() != kernels::dtype::f32 || i->second.shape().dims() != dims)
    return make_error(errc::bad_model, kind + " file: tensor " + name + " is "
                                         + i->second.describe() + ", expected f32"
                                         + shape_text(dims));
  return caf::none;
}

/// The metadata value `key`, or errc::bad_model.
caf::expected<std::string> meta(const kernels::safetensors_file& file, const std::string& kind,
                                const std::string& key) {
  auto i = file.metadata.find(key);
  if (i == file.metadata.end())
    return make_error(errc::bad_model, kind + " file: __metadata__ lacks " + key);
  return i->second;
}

caf::expected<int64_t> parse_int(const std::string& s, const std::string& what) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
    return make_error(errc::bad_model, what + " '" + s + "' is not a whole number");
  return std::stoll(s);
}

// --- mlp -----------------------------------------------------------------------------------

caf::expected<std::vector<int64_t>> mlp_sizes(const kernels::safetensors_file& file) {
  auto text = meta(file, "mlp", "comb.sizes");
  if (!text)
    return text.error();
  std::vector<int64_t> sizes;
  size_t pos = 0;
  while (pos <= text->size()) {
    auto end = text->find(',', pos);
    if (end == std::string::npos)
      end = text->size();
    auto v = parse_int(text->substr(pos, end - pos), "mlp file: comb.sizes entry");
    if (!v)
      return v.error();
    if (*v < 1 || *v > 65536)
      return make_error(errc::bad_model,
                        "mlp file: comb.sizes entry " + std::to_string(*v) + " outside 1..65536");
    sizes.push_back(*v);
    pos = end + 1;
  }
  if (sizes.size() < 2 || sizes.size() > 64)
    return make_error(errc::bad_model, "mlp file: comb.sizes '" + *text
                                         + "' needs 2 to 64 layer widths (input first)");
  return sizes;
}

/// Checks every tensor of an MLP file; returns the sizes.
caf::expected<std::vector<int64_t>> check_mlp(const kernels::safetensors_file& file) {
  auto sizes = mlp_sizes(file);
  if (!sizes)
    return sizes.error();
  for (size_t l = 0; l + 1 < sizes->size(); ++l) {
    auto in = (*sizes)[l], out = (*sizes)[l + 1];
    if (auto err = expect_tensor(file, "mlp", "fc" + std::to_string(l) + ".weight", {in, out}))
      return err;
    if (auto err = expect_tensor(file, "mlp", "fc" + std::to_string(l) + ".bias", {out}))
      return err;
  }
  if (file.tensors.size() != 2 * (sizes->size() - 1)) {
    for (auto& [name, t] : file.tensors)
      if (name.rfind("fc", 0) != 0)
        return make_error(errc::bad_model, "mlp file: unexpected tensor " + name);
    return make_error(errc::bad_model,
                      "mlp file: " + std::to_string(file.tensors.size()) + " tensors, expected "
                        + std::to_string(2 * (sizes->size() - 1)) + " for comb.sizes");
  }
  return sizes;
}

std::string sizes_text(const std::vector<int64_t>& sizes, char sep) {
  std::string out;
  for (auto s : sizes)
    out += (out.empty() ? "" : std::string(1, sep)) + std::to_string(s);
  return out;
}

int64_t mlp_parameters(const std::vector<int64_t>& sizes) {
  int64_t n = 0;
  for (size_t l = 0; l + 1 < sizes.size(); ++l)
    n += sizes[l] * sizes[l + 1] + sizes[l + 1];
  return n;
}

/// The MLP's weights as a safetensors file of kind mlp.
caf::expected<std::string> encode_mlp(kernels::mlp& m) {
  std::vector<tensor> host;
  auto ps = m.parameters();
  for (auto& [n, t] : ps) {
    auto h = t->to(kernels::device::cpu);
    if (!h)
      return h.error();
    host.push_back(std::move(*h));
  }
  std::vector<std::pair<std::string, const tensor*>> list;
  for (size_t i = 0; i < ps.size(); ++i)
    list.emplace_back(ps[i].first, &host[i]);
  return kernels::encode_safetensors(list, {{"comb.kind", "mlp"},
                                            {"comb.sizes", sizes_text(m.config().sizes, ',')}});
}

/// A task's "x", checked: u8 [n, in] (or [n, 28, 28], [n, 28, 28, 1] for 784) or f32 [n, in];
/// sets `n`.
caf::expected<tensor_view> mlp_input(const task_tensors& t, const std::vector<tensor_view>& views,
                                     int64_t in, int64_t& n) {
  auto x = input_of(t, views, "mlp", "x");
  if (!x)
    return x.error();
  auto& spec = *x->spec;
  auto bad = [&] {
    return make_error(
      errc::invalid_argument,
      task_prefix(t) + "mlp input " + spec.describe() + ": expected u8 [n, " + std::to_string(in)
        + "] (or [n, 28, 28], [n, 28, 28, 1] for 784) or f32 [n, " + std::to_string(in) + "]");
  };
  if (spec.shape.empty())
    return bad();
  int64_t row = 1;
  for (size_t i = 1; i < spec.shape.size(); ++i)
    row *= spec.shape[i];
  if (spec.shape.size() < 2 || row != in)
    return bad();
  if (spec.type() != tensor_dtype::u8
      && !(spec.type() == tensor_dtype::f32 && spec.shape.size() == 2))
    return bad();
  n = spec.shape[0];
  return x;
}

/// Whether a task asks for the class probabilities: an input tensor "with_probs" (u8 [1],
/// nonzero).
bool wants_probs(const std::vector<tensor_view>& views) {
  for (auto& v : views)
    if (v.spec->name == "with_probs")
      return v.spec->type() == tensor_dtype::u8 && v.spec->numel() >= 1 && v.data[0] != 0;
  return false;
}

/// Writes elements [begin, end) of mlp_input's rows as f32 to `out` (out[0] is element
/// `begin`): u8 scaled by 1/255, f32 as is.
void mlp_write_range(const tensor_view& x, size_t begin, size_t end, float* out) {
  if (x.spec->type() == tensor_dtype::u8) {
    auto* p = reinterpret_cast<const uint8_t*>(x.data) + begin;
    for (size_t i = 0, count = end - begin; i < count; ++i)
      out[i] = static_cast<float>(p[i]) / 255.0f;
  } else {
    std::memcpy(out, x.data + begin * sizeof(float), (end - begin) * sizeof(float));
  }
}

/// Elements below which an input's conversion stays on the calling thread (a region's
/// fork-join costs a few microseconds; 32k elements take about 10 us on one core).
constexpr int64_t rows_grain = int64_t{1} << 15;

/// Writes the inputs' rows one after another to `out` as f32 (each input n * in floats),
/// split across the kernels' CPU pool. Each element is converted on its own, so the floats
/// are the same whichever thread writes them.
void mlp_write_rows(const std::vector<tensor_view>& xs, float* out) {
  std::vector<int64_t> start(xs.size() + 1, 0); // element offset of each input in `out`
  for (size_t k = 0; k < xs.size(); ++k)
    start[k + 1] = start[k] + xs[k].spec->numel();
  kernels::cpu_backend::parallel_range(start.back(), rows_grain, [&](int64_t b, int64_t e) {
    // The last input that starts at or before b (skips empty ones before it).
    auto k = static_cast<size_t>(std::upper_bound(start.begin(), start.end(), b) - start.begin())
             - 1;
    for (; b < e && k < xs.size(); ++k) {
      auto end = std::min(e, start[k + 1]);
      if (end > b)
        mlp_write_range(xs[k], static_cast<size_t>(b - start[k]),
                        static_cast<size_t>(end - start[k]), out + b);
      b = std::max(b, end);
    }
  });
}

/// A task's "x" as f32 rows [n, in].
caf::expected<std::vector<float>> mlp_rows(const task_tensors& t,
                                           const std::vector<tensor_view>& views, int64_t in,
                                           int64_t& n) {
  auto x = mlp_input(t, views, in, n);
  if (!x)
    return x.error();
  std::vector<float> out(static_cast<size_t>(n * in));
  mlp_write_rows({*x}, out.data());
  return out;
}

class mlp_model : public loaded_model {
public:
  mlp_model(kernels::mlp m, kernels::backend& be) : m_(std::move(m)), be_(&be) {}

  size_t memory_bytes() const override {
    // The kernels' mlp holds weights, gradients and both Adam moments: 4 copies.
    return static_cast<size_t>(mlp_parameters(m_.config().sizes)) * sizeof(float) * 4;
  }

  std::vector<caf::expected<tensor_pack>> infer(
    const std::vector<const task_tensors*>& batch) override {
    std::vector<caf::expected<tensor_pack>> out;
    auto in = m_.config().sizes.front();
    auto classes = m_.config().sizes.back();
    std::vector<tensor_view> inputs;
    std::vector<std::pair<size_t, int64_t>> valid; // (index in batch, rows)
    std::vector<bool> with_probs;                  // per valid task
    int64_t total = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      out.emplace_back(tensor_pack{});
      auto views = batch[i]->views();
      if (!views) {
        out[i] = views.error();
        continue;
      }
      int64_t n = 0;
      auto x = mlp_input(*batch[i], *views, in, n);
      if (!x) {
        out[i] = x.error();
        continue;
      }
      inputs.push_back(*x);
      valid.emplace_back(i, n);
      with_probs.push_back(wants_probs(*views));
      total += n;
    }
    const float* probs = nullptr;
    tensor host;
    if (total > 0) {
      // The batch's rows go straight into an input tensor kept from the last batch (same
      // shape: no allocation and no zeroing; a batch of another size reallocates it).
      auto fail = [&](const caf::error& e) {
        for (auto& [i, n] : valid)
          out[i] = make_error(errc::procedure_failed, task_prefix(*batch[i]) + "mlp forward on "
                                                        + be_->name() + " failed: " + describe(e));
        return out;
      };
      if (auto err = x_.ensure(kernels::shape{total, in}))
        return fail(err);
      mlp_write_rows(inputs, x_.data<float>());
      auto p = m_.forward(x_);
      if (!p)
        return fail(p.error());
      if (p->device() == kernels::device::cpu) {
        host = std::move(*p);
      } else {
        auto h = p->to(kernels::device::cpu);
        if (!h)
          return fail(h.error());
        host = std::move(*h);
      }
      probs = host.data<float>();
    }
    int64_t row = 0;
    for (size_t k = 0; k < valid.size(); ++k) {
      auto [i, n] = valid[k];
      std::vector<int32_t> label(static_cast<size_t>(n));
      std::vector<float> score(static_cast<size_t>(n));
      const float* p = probs + row * classes;
      for (int64_t r = 0; r < n; ++r) {
        auto* best = std::max_element(p + r * classes, p + (r + 1) * classes);
        label[r] = static_cast<int32_t>(best - (p + r * classes));
        score[r] = *best;
      }
      // Label and score only unless asked: the probabilities are 10x the bytes, and every
      // result travels back, through the result procedure and into the log.
      tensor_pack pack;
      pack.add("label", tensor_dtype::i32, {n}, label.data());
      pack.add("score", tensor_dtype::f32, {n}, score.data());
      if (with_probs[k])
        pack.add("probs", tensor_dtype::f32, {n, classes}, p);
      out[i] = std::move(pack);
      row += n;
    }
    return out;
  }

  caf::expected<tensor_pack> train(const task_tensors& task) override {
    auto views = task.views();
    if (!views)
      return views.error();
    auto sizes = m_.config().sizes;
    auto in = sizes.front();
    auto classes = sizes.back();
    int64_t n = 0;
    auto rows = mlp_rows(task, *views, in, n);
    if (!rows)
      return rows.error();
    auto y = input_of(task, *views, "mlp train", "y");
    if (!y)
      return y.error();
    auto& ys = *y->spec;
    if (ys.shape != std::vector<int64_t>{n}
        || (ys.type() != tensor_dtype::u8 && ys.type() != tensor_dtype::i32))
      return make_error(errc::invalid_argument, task_prefix(task) + "mlp train labels "
                                                  + ys.describe() + ": expected u8 or i32 ["
                                                  + std::to_string(n) + "]");
    std::vector<int32_t> labels(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      int32_t v = 0;
      if (ys.type() == tensor_dtype::u8)
        v = reinterpret_cast<const uint8_t*>(y->data)[i];
      else
        std::memcpy(&v, y->data + i * 4, 4);
      if (v < 0 || v >= classes)
        return make_error(errc::invalid_argument,
                          task_prefix(task) + "mlp train label " + std::to_string(v) + " at row "
                            + std::to_string(i) + " outside 0.." + std::to_string(classes - 1));
      labels[i] = v;
    }
    if (n == 0)
      return make_error(errc::invalid_argument, task_prefix(task) + "mlp train needs rows (n = 0)");
    int64_t epochs = 1, bsize = 64;
    double lr = 1e-3;
    uint64_t seed = 1;
    for (auto& v : *views) {
      if (v.spec->name != "config")
        continue;
      auto strs = read_strings(v);
      if (!strs || strs->size() != 1)
        return make_error(errc::invalid_argument,
                          task_prefix(task) + "mlp train 'config' must be str [1] holding JSON");
      auto j = nlohmann::json::parse((*strs)[0], nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded() || !j.is_object())
        return make_error(errc::invalid_argument,
                          task_prefix(task) + "mlp train config is not a JSON object");
      auto get_int = [&](const char* key, int64_t lo, int64_t hi, int64_t& dst) -> caf::error {
        auto f = j.find(key);
        if (f == j.end())
          return caf::none;
        if (!f->is_number_integer() || f->get<int64_t>() < lo || f->get<int64_t>() > hi)
          return make_error(errc::invalid_argument,
                            task_prefix(task) + "mlp train config " + key + " = " + f->dump()
                              + ": expected a whole number in " + std::to_string(lo) + ".."
                              + std::to_string(hi));
        dst = f->get<int64_t>();
        return caf::none;
      };
      int64_t s = 1;
      if (auto err = get_int("epochs", 1, 1000, epochs))
        return err;
      if (auto err = get_int("batch", 1, 65536, bsize))
        return err;
      if (auto err = get_int("seed", 0, INT64_MAX, s))
        return err;
      seed = static_cast<uint64_t>(s);
      if (auto f = j.find("lr"); f != j.end()) {
        if (!f->is_number() || !(f->get<double>() > 0) || !(f->get<double>() < 10))
          return make_error(errc::invalid_argument, task_prefix(task)
                                                      + "mlp train config lr = " + f->dump()
                                                      + ": expected a number in (0, 10)");
        lr = f->get<double>();
      }
    }
    // A copy of the loaded weights, trained by Adam; the loaded version stays as it is.
    kernels::mlp_config cfg = m_.config();
    cfg.adam.lr = static_cast<float>(lr);
    cfg.seed = seed;
    auto copy = kernels::mlp::create(cfg, unowned(*be_));
    if (!copy)
      return copy.error();
    kernels::safetensors_file weights;
    for (auto& [name, t] : m_.parameters()) {
      auto h = t->to(kernels::device::cpu);
      if (!h)
        return h.error();
      weights.tensors.emplace(name, std::move(*h));
    }
    if (auto err = kernels::assign_parameters(weights, copy->parameters()))
      return err;
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(seed);
    std::vector<float> losses;
    for (int64_t e = 0; e < epochs; ++e) {
      std::shuffle(order.begin(), order.end(), rng);
      double sum = 0;
      for (int64_t start = 0; start < n; start += bsize) {
        auto b = std::min(bsize, n - start);
        auto xb = tensor::make(kernels::shape{b, in});
        auto yb = tensor::make(kernels::shape{b}, kernels::dtype::i32);
        if (!xb || !yb)
          return xb ? yb.error() : xb.error();
        for (int64_t r = 0; r < b; ++r) {
          auto src = order[static_cast<size_t>(start + r)];
          std::memcpy(xb->data<float>() + r * in, rows->data() + src * in, in * sizeof(float));
          yb->data<int32_t>()[r] = labels[static_cast<size_t>(src)];
        }
        auto loss = copy->train_step(*xb, *yb);
        if (!loss)
          return loss.error();
        sum += static_cast<double>(*loss) * static_cast<double>(b);
      }
      losses.push_back(static_cast<float>(sum / static_cast<double>(n)));
    }
    auto file = encode_mlp(*copy);
    if (!file)
      return file.error();
    tensor_pack pack;
    pack.add("model", tensor_dtype::u8, {static_cast<int64_t>(file->size())}, file->data());
    pack.add("loss", tensor_dtype::f32, {epochs}, losses.data());
    return pack;
  }

private:
  kernels::mlp m_;
  kernels::backend* be_;
  /// The last batch's input rows (reused by a batch of the same size).
  tensor x_;
};

class mlp_runner : public model_runner {
public:
  std::string kind() const override { return "mlp"; }

  caf::expected<std::string> check(std::string_view bytes) const override {
    auto file = decode_file(bytes, "mlp");
    if (!file)
      return file.error();
    auto sizes = check_mlp(*file);
    if (!sizes)
      return sizes.error();
    return "MLP " + sizes_text(*sizes, '-') + ", " + with_commas(mlp_parameters(*sizes))
           + " parameters";
  }

  caf::expected<std::unique_ptr<loaded_model>> load(std::string_view bytes,
                                                    kernels::backend& be) const override {
    auto file = decode_file(bytes, "mlp");
    if (!file)
      return file.error();
    auto sizes = check_mlp(*file);
    if (!sizes)
      return sizes.error();
    kernels::mlp_config cfg;
    cfg.sizes = *sizes;
    auto m = kernels::mlp::create(cfg, unowned(be));
    if (!m)
      return make_error(errc::bad_model, "mlp " + sizes_text(*sizes, '-') + " on " + be.name()
                                           + ": " + describe(m.error()));
    if (auto err = kernels::assign_parameters(*file, m->parameters()))
      return err;
    return std::unique_ptr<loaded_model>(new mlp_model(std::move(*m), be));
  }
};

// --- mobilenet_v2 --------------------------------------------------------------------------

caf::expected<kernels::tflite_model> read_tflite_bytes(std::string_view bytes,
                                                       const std::string& kind) {
  auto m = kernels::read_tflite(
    std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  if (!m)
    return make_error(errc::bad_model, kind + " TFLite file does not read: " + describe(m.error()));
  return m;
}

/// Images u8 [n, h, w, 3] of a task; errc::invalid_argument naming the shape otherwise.
/// want_h/want_w 0: any multiple of `multiple`.
caf::expected<tensor_view> images_of(const task_tensors& t, const std::vector<tensor_view>& views,
                                     const std::string& kind, int64_t want_h, int64_t want_w,
                                     int64_t multiple) {
  auto x = input_of(t, views, kind, "images");
  if (!x)
    return x.error();
  auto& s = *x->spec;
  bool ok = s.type() == tensor_dtype::u8 && s.shape.size() == 4 && s.shape[3] == 3;
  if (ok && want_h > 0)
    ok = s.shape[1] == want_h && s.shape[2] == want_w;
  if (ok && want_h == 0)
    ok = s.shape[1] > 0 && s.shape[2] > 0 && s.shape[1] % multiple == 0
         && s.shape[2] % multiple == 0 && s.shape[1] <= 4096 && s.shape[2] <= 4096;
  if (!ok)
    return make_error(errc::invalid_argument,
                      task_prefix(t) + kind + " input " + s.describe() + ": expected u8 [n, "
                        + (want_h > 0
                             ? std::to_string(want_h) + ", " + std::to_string(want_w)
                             : "h, w (multiples of " + std::to_string(multiple) + ", at most 4096)")
                        + ", 3] (RGB)");
  return x;
}

class mobilenet_model : public loaded_model {
public:
  mobilenet_model(kernels::mobilenet_v2 m, kernels::backend& be) : m_(std::move(m)), be_(&be) {}

  size_t memory_bytes() const override {
    size_t floats = 0;
    for (auto& l : m_.layers())
      floats += l.weights.size() + l.bias.size();
    // CPU: the weights and their packed copies; a device: one copy there.
    return floats * sizeof(float) * (be_->device() == kernels::device::cpu ? 2 : 1);
  }

  std::vector<caf::expected<tensor_pack>> infer(
    const std::vector<const task_tensors*>& batch) override {
    std::vector<caf::expected<tensor_pack>> out;
    std::vector<float> input;
    std::vector<std::pair<size_t, int64_t>> valid;
    const int64_t image = 224 * 224 * 3;
    for (size_t i = 0; i < batch.size(); ++i) {
      out.emplace_back(tensor_pack{});
      auto views = batch[i]->views();
      if (!views) {
        out[i] = views.error();
        continue;
      }
      auto x = images_of(*batch[i], *views, "mobilenet_v2", 224, 224, 1);
      if (!x) {
        out[i] = x.error();
        continue;
      }
      auto n = x->spec->shape[0];
      auto* p = reinterpret_cast<const uint8_t*>(x->data);
      auto at = input.size();
      input.resize(at + static_cast<size_t>(n * image));
      float scale = m_.input_scale(), zero = m_.input_zero_point();
      for (int64_t k = 0; k < n * image; ++k)
        input[at + k] = scale * (static_cast<float>(p[k]) - zero);
      valid.emplace_back(i, n);
    }
    int64_t total = 0;
    for (auto& [i, n] : valid)
      total += n;
    if (total == 0) {
      for (auto& [i, n] : valid)
        out[i] = empty_result();
      return out;
    }
    auto logits = run(input, total);
    if (!logits) {
      for (auto& [i, n] : valid)
        out[i] = make_error(errc::procedure_failed, task_prefix(*batch[i])
                                                      + "mobilenet_v2 forward on " + be_->name()
                                                      + " failed: " + describe(logits.error()));
      return out;
    }
    int64_t classes = m_.config().num_classes;
    int64_t row = 0;
    for (auto& [i, n] : valid) {
      std::vector<int32_t> label, top5;
      std::vector<float> score;
      for (int64_t r = 0; r < n; ++r) {
        const float* l = logits->data() + (row + r) * classes;
        float mx = *std::max_element(l, l + classes);
        double sum = 0;
        for (int64_t c = 0; c < classes; ++c)
          sum += std::exp(static_cast<double>(l[c] - mx));
        std::vector<int32_t> idx(static_cast<size_t>(classes));
        std::iota(idx.begin(), idx.end(), 0);
        auto k = std::min<int64_t>(5, classes);
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
          return l[a] > l[b] || (l[a] == l[b] && a < b);
        });
        label.push_back(idx[0]);
        score.push_back(static_cast<float>(1.0 / sum)); // exp(max - max) / sum
        for (int64_t j = 0; j < 5; ++j)
          top5.push_back(j < k ? idx[static_cast<size_t>(j)] : -1);
      }
      tensor_pack pack;
      pack.add("label", tensor_dtype::i32, {n}, label.data());
      pack.add("score", tensor_dtype::f32, {n}, score.data());
      pack.add("top5", tensor_dtype::i32, {n, 5}, top5.data());
      out[i] = std::move(pack);
      row += n;
    }
    return out;
  }

private:
  static tensor_pack empty_result() {
    tensor_pack pack;
    pack.add("label", tensor_dtype::i32, {0}, nullptr);
    pack.add("score", tensor_dtype::f32, {0}, nullptr);
    pack.add("top5", tensor_dtype::i32, {0, 5}, nullptr);
    return pack;
  }

  caf::expected<std::vector<float>> run(const std::vector<float>& input, int64_t n) {
    if (be_->device() == kernels::device::cpu && be_->name() == "cpu")
      return m_.logits(input.data(), static_cast<int>(n));
    auto x = tensor::from(kernels::shape{n, 224, 224, 3}, input);
    if (!x)
      return x.error();
    auto xd = x->to(be_->device());
    if (!xd)
      return xd.error();
    auto l = m_.logits(*be_, *xd);
    if (!l)
      return l.error();
    auto h = l->to(kernels::device::cpu);
    if (!h)
      return h.error();
    return std::vector<float>(h->data<float>(), h->data<float>() + h->numel());
  }

  kernels::mobilenet_v2 m_;
  kernels::backend* be_;
};

class mobilenet_runner : public model_runner {
public:
  std::string kind() const override { return "mobilenet_v2"; }

  bool claims_tflite(const kernels::tflite_model& m) const override {
    // MobileNetV2 1.0 at 224: one image input [1, 224, 224, 3], one output of 1000 or 1001
    // classes, depthwise convolutions. check() then verifies the whole graph.
    if (m.inputs.size() != 1 || m.outputs.size() != 1)
      return false;
    auto in = m.inputs[0], out = m.outputs[0];
    if (in < 0 || out < 0 || static_cast<size_t>(in) >= m.tensors.size()
        || static_cast<size_t>(out) >= m.tensors.size())
      return false;
    if (m.tensors[in].shape != std::vector<int32_t>{1, 224, 224, 3})
      return false;
    auto& os = m.tensors[out].shape;
    if (os.empty() || (os.back() != 1001 && os.back() != 1000))
      return false;
    return std::any_of(m.operators.begin(), m.operators.end(), [](auto& o) {
      return o.builtin_code == kernels::tflite_op::depthwise_conv_2d;
    });
  }

  caf::expected<std::string> check(std::string_view bytes) const override {
    auto tf = read_tflite_bytes(bytes, "mobilenet_v2");
    if (!tf)
      return tf.error();
    auto m = kernels::mobilenet_v2::from_tflite(*tf);
    if (!m)
      return make_error(errc::bad_model, "mobilenet_v2: " + describe(m.error()));
    int64_t params = 0;
    for (auto& l : m->layers())
      params += static_cast<int64_t>(l.weights.size() + l.bias.size());
    return "MobileNetV2 1.0 224 (TFLite, dequantized), " + std::to_string(m->config().num_classes)
           + " classes, " + with_commas(params) + " parameters";
  }

  caf::expected<std::unique_ptr<loaded_model>> load(std::string_view bytes,
                                                    kernels::backend& be) const override {
    auto tf = read_tflite_bytes(bytes, "mobilenet_v2");
    if (!tf)
      return tf.error();
    auto m = kernels::mobilenet_v2::from_tflite(*tf);
    if (!m)
      return make_error(errc::bad_model, "mobilenet_v2: " + describe(m.error()));
    auto& run_on = probed("mobilenet_v2", be, 224, [&](const tensor& x) -> caf::error {
      auto l = m->logits(be, x);
      return l ? caf::error{} : l.error();
    });
    return std::unique_ptr<loaded_model>(new mobilenet_model(std::move(*m), run_on));
  }
};

// --- centernet -----------------------------------------------------------------------------

struct centernet_meta {
  kernels::centernet_config cfg;
  bool tf_padding = false;
  std::string note;
  int64_t parameters = 0;
};

caf::expected<centernet_meta> read_centernet_meta(const kernels::safetensors_file& file) {
  centernet_meta m;
  auto classes = meta(file, "centernet", "comb.num_classes");
  if (!classes)
    return classes.error();
  auto c = parse_int(*classes, "centernet file: comb.num_classes");
  if (!c)
    return c.error();
  if (*c < 1 || *c > 1000)
    return make_error(errc::bad_model, "centernet file: comb.num_classes " + std::to_string(*c)
                                         + " outside 1..1000");
  m.cfg.num_classes = static_cast<int>(*c);
  if (auto i = file.metadata.find("comb.tf_padding"); i != file.metadata.end()) {
    if (i->second == "true" || i->second == "1")
      m.tf_padding = true;
    else if (i->second == "false" || i->second == "0")
      m.tf_padding = false;
    else
      return make_error(errc::bad_model, "centernet file: comb.tf_padding '" + i->second
                                           + "' is neither true nor false");
  }
  if (auto i = file.metadata.find("comb.note"); i != file.metadata.end())
    m.note = i->second;
  return m;
}

caf::expected<std::pair<kernels::centernet, centernet_meta>> decode_centernet_file(
  std::string_view bytes) {
  auto file = decode_file(bytes, "centernet");
  if (!file)
    return file.error();
  auto m = read_centernet_meta(*file);
  if (!m)
    return m.error();
  for (auto& [name, t] : file->tensors)
    m->parameters += t.numel();
  auto net = kernels::centernet::decode(*file, m->cfg, m->tf_padding, "file");
  if (!net)
    return net.error();
  return std::make_pair(std::move(*net), std::move(*m));
}

class centernet_model : public loaded_model {
public:
  centernet_model(kernels::centernet net, size_t bytes, kernels::backend& be)
    : net_(std::move(net)), bytes_(bytes), be_(&be) {}

  size_t memory_bytes() const override { return bytes_; }

  std::vector<caf::expected<tensor_pack>> infer(
    const std::vector<const task_tensors*>& batch) override {
    static constexpr int64_t k = 100;
    std::vector<caf::expected<tensor_pack>> out;
    // Valid tasks grouped by image size: each group runs as one batch.
    std::map<std::pair<int64_t, int64_t>, std::vector<std::pair<size_t, tensor_view>>> groups;
    std::vector<std::vector<tensor_view>> keep(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      out.emplace_back(tensor_pack{});
      auto views = batch[i]->views();
      if (!views) {
        out[i] = views.error();
        continue;
      }
      keep[i] = std::move(*views);
      auto x = images_of(*batch[i], keep[i], "centernet", 0, 0, 32);
      if (!x) {
        out[i] = x.error();
        continue;
      }
      groups[{x->spec->shape[1], x->spec->shape[2]}].emplace_back(i, *x);
    }
    for (auto& [hw, members] : groups) {
      auto [h, w] = hw;
      int64_t total = 0;
      for (auto& [i, x] : members)
        total += x.spec->shape[0];
      std::vector<float> input(static_cast<size_t>(total * h * w * 3));
      size_t at = 0;
      for (auto& [i, x] : members) {
        auto* p = reinterpret_cast<const uint8_t*>(x.data);
        for (size_t j = 0; j < x.size; ++j)
          input[at + j] = (static_cast<float>(p[j]) - 128.0f) / 128.0f;
        at += x.size;
      }
      caf::expected<kernels::centernet_output> maps = kernels::centernet_output{};
      if (total > 0)
        maps = run(input, total, h, w);
      if (!maps) {
        for (auto& [i, x] : members)
          out[i] = make_error(errc::procedure_failed, task_prefix(*batch[i])
                                                        + "centernet forward on " + be_->name()
                                                        + " failed: " + describe(maps.error()));
        continue;
      }
      int64_t image = 0;
      for (auto& [i, x] : members) {
        auto n = x.spec->shape[0];
        std::vector<float> boxes(static_cast<size_t>(n * k * 6), 0.0f);
        std::vector<int32_t> count(static_cast<size_t>(n));
        for (int64_t r = 0; r < n; ++r) {
          auto cells = static_cast<size_t>(maps->h) * maps->w;
          auto idx = static_cast<size_t>(image + r);
          auto dets = kernels::decode_centernet(maps->heat.data() + idx * cells * maps->classes,
                                                maps->size.data() + idx * cells * 2,
                                                maps->offset.data() + idx * cells * 2, maps->h,
                                                maps->w, maps->classes, static_cast<int>(k),
                                                static_cast<float>(kernels::centernet::stride));
          count[r] = static_cast<int32_t>(dets.size());
          for (size_t d = 0; d < dets.size(); ++d) {
            float* b = boxes.data() + (r * k + static_cast<int64_t>(d)) * 6;
            b[0] = dets[d].x0;
            b[1] = dets[d].y0;
            b[2] = dets[d].x1;
            b[3] = dets[d].y1;
            b[4] = dets[d].score;
            b[5] = static_cast<float>(dets[d].cls);
          }
        }
        tensor_pack pack;
        pack.add("boxes", tensor_dtype::f32, {n, k, 6}, boxes.data());
        pack.add("count", tensor_dtype::i32, {n}, count.data());
        out[i] = std::move(pack);
        image += n;
      }
    }
    return out;
  }

private:
  caf::expected<kernels::centernet_output> run(const std::vector<float>& input, int64_t n,
                                               int64_t h, int64_t w) {
    if (be_->device() == kernels::device::cpu && be_->name() == "cpu")
      return net_.forward(input.data(), static_cast<int>(n), static_cast<int>(h),
                          static_cast<int>(w));
    auto x = tensor::from(kernels::shape{n, h, w, 3}, input);
    if (!x)
      return x.error();
    auto xd = x->to(be_->device());
    if (!xd)
      return xd.error();
    return net_.forward(*be_, *xd);
  }

  kernels::centernet net_;
  size_t bytes_;
  kernels::backend* be_;
};

class centernet_runner : public model_runner {
public:
  std::string kind() const override { return "centernet"; }

  caf::expected<std::string> check(std::string_view bytes) const override {
    auto net = decode_centernet_file(bytes);
    if (!net)
      return net.error();
    auto& m = net->second;
    std::string out = "CenterNet (MobileNetV2 backbone), " + std::to_string(m.cfg.num_classes)
                      + " classes, " + with_commas(m.parameters) + " parameters";
    if (!m.note.empty())
      out += "; " + m.note;
    return out;
  }

  caf::expected<std::unique_ptr<loaded_model>> load(std::string_view bytes,
                                                    kernels::backend& be) const override {
    auto net = decode_centernet_file(bytes);
    if (!net)
      return net.error();
    // The weights (about the file's size) and, on the CPU, their packed copies.
    size_t weights = bytes.size();
    size_t held = be.device() == kernels::device::cpu ? 2 * weights : weights;
    auto& run_on = probed("centernet", be, 64, [&](const tensor& x) -> caf::error {
      auto out = net->first.forward(be, x);
      return out ? caf::error{} : out.error();
    });
    if (&run_on != &be)
      held = 2 * weights;
    return std::unique_ptr<loaded_model>(new centernet_model(std::move(net->first), held, run_on));
  }
};

} // namespace

void register_kernel_runners() {
  register_runner(std::make_shared<mlp_runner>());
  register_runner(std::make_shared<mobilenet_runner>());
  register_runner(std::make_shared<centernet_runner>());
}

caf::expected<std::string> make_mlp_file(const std::vector<int64_t>& sizes, uint64_t seed) {
  kernels::mlp_config cfg;
  cfg.sizes = sizes;
  cfg.seed = seed;
  auto m = kernels::mlp::create(cfg, unowned(kernels::cpu()));
  if (!m)
    return m.error();
  return encode_mlp(*m);
}

caf::expected<std::string> make_centernet_file(const std::string& tflite_path, int num_classes,
                                               uint64_t seed) {
  if (num_classes < 1 || num_classes > 1000)
    return make_error(errc::invalid_argument,
                      "centernet num_classes " + std::to_string(num_classes) + " outside 1..1000");
  auto backbone = kernels::mobilenet_v2::load(tflite_path);
  if (!backbone)
    return backbone.error();
  bool tf_padding = backbone->config().tf_padding;
  kernels::centernet_config cfg;
  cfg.num_classes = num_classes;
  auto net = kernels::centernet::with_backbone(std::move(*backbone), cfg, seed);
  return net.encode({{"comb.kind", "centernet"},
                     {"comb.num_classes", std::to_string(num_classes)},
                     {"comb.tf_padding", tf_padding ? "true" : "false"},
                     {"comb.note", "heads randomly initialised: outputs are for timing only"}});
}

} // namespace comb::runtime
