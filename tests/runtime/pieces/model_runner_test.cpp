// Unit tests of the model-runner registry and the kernels' runners: identify_model and
// check_model errors, the MLP runner against kernels::mlp directly (inference, per-task errors
// in a batch, training), MobileNetV2 on the shared images (skipped, visibly, without
// ../shared/data), one small CenterNet forward, and the runners on CUDA against the CPU
// (skipped, visibly, without a device).
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/pieces/model_runner.hpp"

#include "base/errc.hpp"
#include "kernels/backend.hpp"
#include "kernels/detail/cpu_pool.hpp"
#include "kernels/image.hpp"
#include "kernels/models/centernet.hpp"
#include "kernels/models/mlp.hpp"
#include "kernels/safetensors.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

using namespace comb;
using namespace comb::runtime;
using comb::test::why;

namespace {

std::string data_dir() {
  if (auto env = std::getenv("COMB_DATA_DIR"))
    return env;
  return std::string(COMB_SOURCE_DIR) + "/../shared/data";
}

std::string tflite_path() {
  return data_dir() + "/models/mobilenet_v2_1.0_224_quant.tflite";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// True when `e` is bad_model and its text holds `part`.
template <class T>
bool bad_model(const caf::expected<T>& x, const std::string& part) {
  return !x && is(x.error(), errc::bad_model)
         && describe(x.error()).find(part) != std::string::npos;
}

// A safetensors file of the given tensors (shapes only, zeros) and metadata.
std::string file_of(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
                    const std::map<std::string, std::string>& metadata) {
  std::vector<kernels::tensor> store;
  for (auto& [name, dims] : shapes)
    store.push_back(kernels::tensor::zeros(kernels::shape(dims)));
  std::vector<std::pair<std::string, const kernels::tensor*>> list;
  for (size_t i = 0; i < shapes.size(); ++i)
    list.emplace_back(shapes[i].first, &store[i]);
  auto bytes = kernels::encode_safetensors(list, metadata);
  REQUIRE_MESSAGE(bytes, why(bytes));
  return *bytes;
}

// The tensor `name` of a pack as a vector of T.
template <class T>
std::vector<T> values(const tensor_pack& p, const std::string& name) {
  auto views = p.views();
  REQUIRE_MESSAGE(views, why(views));
  for (auto& v : *views)
    if (v.spec->name == name) {
      std::vector<T> out(v.size / sizeof(T));
      std::memcpy(out.data(), v.data, v.size);
      return out;
    }
  FAIL("no tensor " << name);
  return {};
}

const tensor_spec& spec(const tensor_pack& p, const std::string& name) {
  for (auto& s : p.specs)
    if (s.name == name)
      return s;
  FAIL("no tensor " << name);
  return p.specs.front();
}

task_tensors task_of(uint64_t id, tensor_pack p) {
  return task_tensors{id, std::move(p)};
}

std::unique_ptr<loaded_model> load_on_cpu(const std::string& bytes) {
  auto kind = identify_model(bytes);
  REQUIRE_MESSAGE(kind, why(kind));
  auto r = find_runner(*kind);
  REQUIRE(r);
  auto m = r->load(bytes, kernels::cpu());
  REQUIRE_MESSAGE(m, why(m));
  return std::move(*m);
}

/// An MLP file of `sizes` with weights from `seed`, loaded by the MLP runner on the CPU, and
/// the same network made directly with kernels::mlp, to check the runner against.
struct mlp_pair {
  std::unique_ptr<loaded_model> model;
  kernels::mlp direct;
};

mlp_pair mlp_and_direct(const std::vector<int64_t>& sizes, uint64_t seed) {
  auto bytes = make_mlp_file(sizes, seed);
  REQUIRE_MESSAGE(bytes, why(bytes));
  kernels::mlp_config cfg;
  cfg.sizes = sizes;
  cfg.seed = seed;
  auto direct = kernels::mlp::create(cfg);
  REQUIRE_MESSAGE(direct, why(direct));
  return {load_on_cpu(*bytes), std::move(*direct)};
}

/// A runner that loads nothing and says its name (for the registry's tests).
class named_runner : public model_runner {
public:
  named_runner(std::string kind, std::string summary)
    : kind_(std::move(kind)), summary_(std::move(summary)) {}
  std::string kind() const override { return kind_; }
  caf::expected<std::string> check(std::string_view) const override { return summary_; }
  caf::expected<std::unique_ptr<loaded_model>> load(std::string_view,
                                                    kernels::backend&) const override {
    return make_error(errc::unsupported, "named_runner loads nothing");
  }

private:
  std::string kind_, summary_;
};

} // namespace

TEST_SUITE("runtime.pieces.model_runner") {
  TEST_CASE("the kernels' runners are registered; a runner of the same kind replaces one") {
    auto kinds = runner_kinds();
    for (auto k : {"centernet", "mlp", "mobilenet_v2"})
      CHECK(std::find(kinds.begin(), kinds.end(), k) != kinds.end());
    CHECK(std::is_sorted(kinds.begin(), kinds.end()));
    CHECK(find_runner("mlp") != nullptr);
    CHECK(find_runner("no-such-kind") == nullptr);
    register_runner(std::make_shared<named_runner>("test-kind", "first"));
    register_runner(std::make_shared<named_runner>("test-kind", "second"));
    auto r = find_runner("test-kind");
    REQUIRE(r);
    CHECK(r->check("") == std::string{"second"});
    kinds = runner_kinds();
    CHECK(std::find(kinds.begin(), kinds.end(), "test-kind") != kinds.end());
    CHECK(std::find(kinds.begin(), kinds.end(), "mlp") != kinds.end());
  }

  TEST_CASE("identify_model and check_model name what is wrong with a file") {
    std::mt19937_64 rng(7);
    std::string noise(4096, '\0');
    for (auto& c : noise)
      c = static_cast<char>(rng());
    CHECK(bad_model(identify_model(noise), "neither safetensors nor TFLite"));
    CHECK(bad_model(identify_model(""), "neither safetensors nor TFLite"));

    auto no_kind = file_of({{"w", {2, 2}}}, {});
    CHECK(bad_model(identify_model(no_kind), "comb.kind"));
    CHECK(bad_model(identify_model(no_kind), "mlp")); // names the registered kinds

    // A safetensors file cut inside its header: named as truncated, with both sizes.
    auto whole = file_of({{"w", {2, 2}}}, {{"comb.kind", "mlp"}});
    auto cut = identify_model(std::string_view{whole}.substr(0, 20));
    CHECK(bad_model(cut, "truncated safetensors file"));
    CHECK(bad_model(cut, "the file has 20 bytes"));

    auto unknown = file_of({{"w", {2, 2}}}, {{"comb.kind", "teapot"}});
    auto u = identify_model(unknown);
    CHECK(bad_model(u, "teapot"));
    CHECK(bad_model(u, "mobilenet_v2"));

    // A TFLite file cut short: the magic is there, the flatbuffer does not read.
    std::string tfl;
    if (std::filesystem::exists(tflite_path()))
      tfl = read_file(tflite_path()).substr(0, 2000);
    else
      tfl = std::string("\x1c\0\0\0TFL3", 8) + std::string(40, '\0');
    CHECK(bad_model(identify_model(tfl), "TFLite"));

    // An MLP whose first weight has the wrong shape: check names the tensor and both shapes.
    auto wrong = file_of(
      {{"fc0.weight", {4, 2}}, {"fc0.bias", {3}}, {"fc1.weight", {3, 2}}, {"fc1.bias", {2}}},
      {{"comb.kind", "mlp"}, {"comb.sizes", "4,3,2"}});
    CHECK(identify_model(wrong) == std::string{"mlp"});
    auto c = check_model(wrong);
    CHECK(bad_model(c, "fc0.weight"));
    CHECK(bad_model(c, "[4, 3]"));
    auto r = find_runner("mlp");
    REQUIRE(r);
    CHECK(bad_model(r->load(wrong, kernels::cpu()), "fc0.weight"));

    auto missing = file_of({{"fc0.weight", {4, 3}}, {"fc0.bias", {3}}},
                           {{"comb.kind", "mlp"}, {"comb.sizes", "4,3,2"}});
    CHECK(bad_model(check_model(missing), "fc1.weight"));
    auto bad_sizes = file_of({{"fc0.weight", {4, 3}}},
                             {{"comb.kind", "mlp"}, {"comb.sizes", "4,x"}});
    CHECK(bad_model(check_model(bad_sizes), "comb.sizes"));

    auto good = make_mlp_file({784, 16, 10}, 1);
    REQUIRE_MESSAGE(good, why(good));
    auto info = check_model(*good);
    REQUIRE_MESSAGE(info, why(info));
    CHECK(info->kind == "mlp");
    CHECK(info->summary == "MLP 784-16-10, 12,730 parameters");
  }

  TEST_CASE("the MLP runner gives kernels::mlp's outputs, per task, for u8 and f32 inputs") {
    auto nets = mlp_and_direct({20, 8, 5}, 42);
    auto& model = nets.model;
    CHECK(model->memory_bytes() == (20 * 8 + 8 + 8 * 5 + 5) * 4 * 4u);

    std::mt19937_64 rng(3);
    std::vector<uint8_t> pixels(3 * 20);
    for (auto& p : pixels)
      p = static_cast<uint8_t>(rng());
    std::vector<float> scaled(pixels.size());
    for (size_t i = 0; i < pixels.size(); ++i)
      scaled[i] = pixels[i] / 255.0f;
    std::vector<float> floats(2 * 20);
    std::normal_distribution<float> nd;
    for (auto& f : floats)
      f = nd(rng);

    tensor_pack a, b, bad;
    a.add("x", tensor_dtype::u8, {3, 20}, pixels.data());
    uint8_t yes = 1;
    a.add("with_probs", tensor_dtype::u8, {1}, &yes); // a asks for the probabilities, b not
    b.add("x", tensor_dtype::f32, {2, 20}, floats.data());
    bad.add("x", tensor_dtype::f32, {2, 19}, floats.data());
    auto ta = task_of(1, a), tb = task_of(2, b), tbad = task_of(3, bad);
    auto out = model->infer({&ta, &tbad, &tb});
    REQUIRE(out.size() == 3);
    REQUIRE_MESSAGE(out[0], why(out[0]));
    REQUIRE_MESSAGE(out[2], why(out[2]));
    REQUIRE(!out[1]);
    CHECK(is(out[1].error(), errc::invalid_argument));
    CHECK(describe(out[1].error()).find("task 3") != std::string::npos);
    CHECK(describe(out[1].error()).find("[2, 19]") != std::string::npos);

    auto check_against = [&](const tensor_pack& got, const std::vector<float>& x, int64_t n) {
      auto xt = kernels::tensor::from(kernels::shape{n, 20}, x);
      REQUIRE(xt);
      auto probs = nets.direct.forward(*xt);
      REQUIRE_MESSAGE(probs, why(probs));
      bool asked = n == 3;
      CHECK(spec(got, "label").shape == std::vector<int64_t>{n});
      CHECK(spec(got, "score").shape == std::vector<int64_t>{n});
      // The probabilities only when asked.
      CHECK(
        std::any_of(got.specs.begin(), got.specs.end(), [](auto& s) { return s.name == "probs"; })
        == asked);
      if (asked)
        CHECK(spec(got, "probs").shape == std::vector<int64_t>{n, 5});
      auto l = values<int32_t>(got, "label");
      auto sc = values<float>(got, "score");
      for (int64_t r = 0; r < n; ++r) {
        const float* want = probs->data<float>() + r * 5;
        if (asked) {
          auto p = values<float>(got, "probs");
          for (int c = 0; c < 5; ++c)
            CHECK(p[r * 5 + c] == doctest::Approx(want[c]).epsilon(1e-5));
        }
        CHECK(l[r] == std::max_element(want, want + 5) - want);
        CHECK(sc[r] == doctest::Approx(*std::max_element(want, want + 5)).epsilon(1e-5));
      }
    };
    check_against(*out[0], scaled, 3);
    check_against(*out[2], floats, 2);

    // Alone, a task gives what it gave in the batch.
    auto alone = model->infer({&tb});
    REQUIRE(alone.size() == 1);
    REQUIRE(alone[0]);
    CHECK(values<float>(*alone[0], "score") == values<float>(*out[2], "score"));
    CHECK(values<int32_t>(*alone[0], "label") == values<int32_t>(*out[2], "label"));

    // A missing tensor is named.
    tensor_pack none;
    none.add("images", tensor_dtype::u8, {1, 20}, pixels.data());
    auto tn = task_of(9, none);
    auto miss = model->infer({&tn});
    REQUIRE(!miss[0]);
    CHECK(describe(miss[0].error()).find("'x'") != std::string::npos);
  }

  TEST_CASE("a large MLP batch's inputs are converted across the kernels' pool as in series") {
    // Inputs of 37 + 1 + 29 + 60 rows of 784 (about 100k elements: several chunks of the
    // pool, their boundaries inside tasks), u8 and f32 mixed; four threads even on a smaller
    // machine. Each task's answer must be the forward pass of its own rows, converted here.
    kernels::detail::set_cpu_threads(4);
    auto nets = mlp_and_direct({784, 16, 10}, 7);
    auto& model = nets.model;

    std::mt19937_64 rng(11);
    const std::vector<int64_t> rows = {37, 1, 29, 60};
    const std::vector<bool> is_u8 = {true, false, true, false};
    std::vector<std::vector<uint8_t>> pixels(rows.size());
    std::vector<std::vector<float>> floats(rows.size()), want_x(rows.size());
    std::vector<tensor_pack> packs(rows.size());
    std::vector<task_tensors> tasks;
    std::normal_distribution<float> nd;
    for (size_t k = 0; k < rows.size(); ++k) {
      auto count = static_cast<size_t>(rows[k] * 784);
      if (is_u8[k]) {
        pixels[k].resize(count);
        for (auto& p : pixels[k])
          p = static_cast<uint8_t>(rng());
        for (auto p : pixels[k])
          want_x[k].push_back(p / 255.0f);
        packs[k].add("x", tensor_dtype::u8, {rows[k], 784}, pixels[k].data());
      } else {
        floats[k].resize(count);
        for (auto& f : floats[k])
          f = nd(rng);
        want_x[k] = floats[k];
        packs[k].add("x", tensor_dtype::f32, {rows[k], 784}, floats[k].data());
      }
      uint8_t yes = 1;
      packs[k].add("with_probs", tensor_dtype::u8, {1}, &yes);
      tasks.push_back(task_of(k + 1, packs[k]));
    }
    std::vector<const task_tensors*> batch;
    for (auto& t : tasks)
      batch.push_back(&t);
    auto out = model->infer(batch);
    REQUIRE(out.size() == rows.size());
    for (size_t k = 0; k < rows.size(); ++k) {
      REQUIRE_MESSAGE(out[k], why(out[k]));
      auto xt = kernels::tensor::from(kernels::shape{rows[k], 784}, want_x[k]);
      REQUIRE(xt);
      auto probs = nets.direct.forward(*xt);
      REQUIRE_MESSAGE(probs, why(probs));
      auto got = values<float>(*out[k], "probs");
      REQUIRE(got.size() == static_cast<size_t>(rows[k] * 10));
      for (size_t i = 0; i < got.size(); ++i)
        CHECK(got[i] == doctest::Approx(probs->data<float>()[i]).epsilon(1e-5));
    }
    kernels::detail::set_cpu_threads(0);
  }

  TEST_CASE("MLP train() lowers the loss and returns a loadable file; the version is unchanged") {
    auto bytes = make_mlp_file({8, 16, 3}, 5);
    REQUIRE_MESSAGE(bytes, why(bytes));
    auto model = load_on_cpu(*bytes);
    // Three separable classes: the label is the index of the largest of the first 3 features.
    std::mt19937_64 rng(11);
    std::normal_distribution<float> nd;
    const int64_t n = 96;
    std::vector<float> x(n * 8);
    std::vector<int32_t> y(n);
    for (int64_t i = 0; i < n; ++i) {
      for (int j = 0; j < 8; ++j)
        x[i * 8 + j] = nd(rng);
      y[i] = static_cast<int32_t>(std::max_element(&x[i * 8], &x[i * 8] + 3) - &x[i * 8]);
    }
    tensor_pack p;
    p.add("x", tensor_dtype::f32, {n, 8}, x.data());
    p.add("y", tensor_dtype::i32, {n}, y.data());
    p.add_strings("config", {R"({"epochs":8,"batch":16,"lr":0.01,"seed":3})"});
    auto task = task_of(1, p);
    tensor_pack probe;
    probe.add("x", tensor_dtype::f32, {4, 8}, x.data());
    auto tp = task_of(2, probe);
    auto before = model->infer({&tp});
    REQUIRE(before[0]);

    auto trained = model->train(task);
    REQUIRE_MESSAGE(trained, why(trained));
    auto loss = values<float>(*trained, "loss");
    REQUIRE(loss.size() == 8);
    INFO("first " << loss.front() << " last " << loss.back());
    CHECK(loss.back() < loss.front() * 0.8f);
    auto file = values<char>(*trained, "model");
    std::string file_bytes(file.begin(), file.end());
    auto info = check_model(file_bytes);
    REQUIRE_MESSAGE(info, why(info));
    CHECK(info->kind == "mlp");
    CHECK(info->summary.rfind("MLP 8-16-3", 0) == 0);
    // Same seed, same result.
    auto again = model->train(task);
    REQUIRE(again);
    CHECK(values<float>(*again, "loss") == loss);

    auto after = model->infer({&tp});
    REQUIRE(after[0]);
    CHECK(values<float>(*after[0], "score") == values<float>(*before[0], "score"));

    // Labels out of range and a bad config are named.
    std::vector<int32_t> big(n, 7);
    tensor_pack q;
    q.add("x", tensor_dtype::f32, {n, 8}, x.data());
    q.add("y", tensor_dtype::i32, {n}, big.data());
    auto tq = task_of(3, q);
    auto e = model->train(tq);
    REQUIRE(!e);
    CHECK(describe(e.error()).find("label 7") != std::string::npos);
    tensor_pack r;
    r.add("x", tensor_dtype::f32, {n, 8}, x.data());
    r.add("y", tensor_dtype::i32, {n}, y.data());
    r.add_strings("config", {R"({"epochs":0})"});
    auto tr = task_of(4, r);
    auto e2 = model->train(tr);
    REQUIRE(!e2);
    CHECK(describe(e2.error()).find("epochs") != std::string::npos);
  }

  TEST_CASE("the MobileNetV2 runner gives the reference top-1 on the shared images") {
    if (!std::filesystem::exists(tflite_path())) {
      MESSAGE("model absent at " << tflite_path() << ": skipping (see shared/data/README.md)");
      return;
    }
    auto bytes = read_file(tflite_path());
    auto info = check_model(bytes);
    REQUIRE_MESSAGE(info, why(info));
    CHECK(info->kind == "mobilenet_v2");
    auto model = load_on_cpu(bytes);
    CHECK(model->memory_bytes() > 3'000'000u * 4);
    const std::pair<const char*, int> cases[] = {{"cat.bmp", 286},
                                                 {"grace_hopper.bmp", 653},
                                                 {"bird.bmp", 20}};
    std::vector<task_tensors> tasks;
    for (size_t i = 0; i < 3; ++i) {
      auto img = kernels::load_bmp(data_dir() + "/models/" + cases[i].first);
      REQUIRE_MESSAGE(img, why(img));
      auto small = kernels::resize_nearest(*img, 224, 224);
      tensor_pack p;
      p.add("images", tensor_dtype::u8, {1, 224, 224, 3}, small.rgb.data());
      tasks.push_back(task_of(i + 1, std::move(p)));
    }
    tensor_pack wrong;
    std::vector<uint8_t> tiny(1 * 32 * 32 * 3);
    wrong.add("images", tensor_dtype::u8, {1, 32, 32, 3}, tiny.data());
    auto tw = task_of(4, std::move(wrong));
    auto out = model->infer({&tasks[0], &tw, &tasks[1], &tasks[2]});
    REQUIRE(out.size() == 4);
    CHECK(!out[1]);
    for (size_t i : {0, 2, 3}) {
      REQUIRE_MESSAGE(out[i], why(out[i]));
      auto& c = cases[i == 0 ? 0 : i - 1];
      auto label = values<int32_t>(*out[i], "label");
      auto score = values<float>(*out[i], "score");
      auto top5 = values<int32_t>(*out[i], "top5");
      INFO(c.first);
      CHECK(label == std::vector<int32_t>{c.second});
      CHECK(score[0] > 0.0f);
      CHECK(score[0] <= 1.0f);
      CHECK(top5.size() == 5);
      CHECK(top5[0] == c.second);
    }
  }

  TEST_CASE("the CenterNet runner decodes boxes of a small forward; bad sizes are per task") {
    kernels::centernet_config cfg;
    cfg.num_classes = 3;
    auto net = kernels::centernet::random(cfg, 9);
    auto bytes = net.encode({{"comb.kind", "centernet"},
                             {"comb.num_classes", "3"},
                             {"comb.tf_padding", "false"},
                             {"comb.note", "random test weights"}});
    REQUIRE_MESSAGE(bytes, why(bytes));
    auto info = check_model(*bytes);
    REQUIRE_MESSAGE(info, why(info));
    CHECK(info->kind == "centernet");
    CHECK(info->summary.find("3 classes") != std::string::npos);
    CHECK(info->summary.find("random test weights") != std::string::npos);
    auto model = load_on_cpu(*bytes);

    std::mt19937_64 rng(5);
    std::vector<uint8_t> img(64 * 64 * 3);
    for (auto& p : img)
      p = static_cast<uint8_t>(rng());
    tensor_pack p, bad;
    p.add("images", tensor_dtype::u8, {1, 64, 64, 3}, img.data());
    bad.add("images", tensor_dtype::u8, {1, 48, 64, 1}, img.data());
    auto tp = task_of(1, p), tb = task_of(2, bad);
    auto out = model->infer({&tp, &tb});
    REQUIRE(out.size() == 2);
    REQUIRE_MESSAGE(out[0], why(out[0]));
    CHECK(!out[1]);
    CHECK(spec(*out[0], "boxes").shape == std::vector<int64_t>{1, 100, 6});
    auto count = values<int32_t>(*out[0], "count");
    auto boxes = values<float>(*out[0], "boxes");

    // The same image straight through kernels::centernet.
    std::vector<float> x(img.size());
    for (size_t i = 0; i < img.size(); ++i)
      x[i] = (img[i] - 128.0f) / 128.0f;
    auto maps = net.forward(x.data(), 1, 64, 64);
    REQUIRE_MESSAGE(maps, why(maps));
    auto dets = kernels::decode_centernet(maps->heat.data(), maps->size.data(), maps->offset.data(),
                                          maps->h, maps->w, maps->classes, 100,
                                          kernels::centernet::stride);
    REQUIRE(count[0] == static_cast<int32_t>(dets.size()));
    REQUIRE(!dets.empty());
    CHECK(boxes[0] == doctest::Approx(dets[0].x0));
    CHECK(boxes[3] == doctest::Approx(dets[0].y1));
    CHECK(boxes[4] == doctest::Approx(dets[0].score));
    CHECK(boxes[5] == static_cast<float>(dets[0].cls));

    auto nometa = net.encode({{"comb.kind", "centernet"}});
    REQUIRE(nometa);
    CHECK(bad_model(check_model(*nometa), "comb.num_classes"));
  }

  TEST_CASE("make_centernet_file puts the TFLite backbone under random heads and says so") {
    if (!std::filesystem::exists(tflite_path())) {
      MESSAGE("model absent at " << tflite_path() << ": skipping (see shared/data/README.md)");
      return;
    }
    auto bytes = make_centernet_file(tflite_path(), 4, 1);
    REQUIRE_MESSAGE(bytes, why(bytes));
    auto info = check_model(*bytes);
    REQUIRE_MESSAGE(info, why(info));
    CHECK(info->kind == "centernet");
    CHECK(info->summary.find("outputs are for timing only") != std::string::npos);
    CHECK(!make_centernet_file(tflite_path(), 0, 1));
    CHECK(!make_centernet_file(data_dir() + "/models/no-such.tflite", 4, 1));
  }

  TEST_CASE("on a CUDA backend the runners give the CPU's answers") {
    auto cuda = kernels::find_backend("cuda");
    if (!cuda) {
      MESSAGE("no CUDA device answered: skipping the CUDA comparison");
      return;
    }
    auto both = [&](const std::string& bytes, const std::vector<const task_tensors*>& tasks) {
      auto kind = identify_model(bytes);
      REQUIRE_MESSAGE(kind, why(kind));
      auto r = find_runner(*kind);
      auto c = r->load(bytes, kernels::cpu());
      auto g = r->load(bytes, *cuda);
      REQUIRE_MESSAGE(c, why(c));
      REQUIRE_MESSAGE(g, why(g));
      auto oc = (*c)->infer(tasks);
      auto og = (*g)->infer(tasks);
      REQUIRE(oc.size() == og.size());
      for (size_t i = 0; i < oc.size(); ++i) {
        REQUIRE_MESSAGE(oc[i], why(oc[i]));
        REQUIRE_MESSAGE(og[i], why(og[i]));
      }
      return std::make_pair(std::move(oc), std::move(og));
    };
    // MLP: probabilities within 1e-4, the same labels.
    auto mlp_file = make_mlp_file({20, 8, 5}, 3);
    REQUIRE(mlp_file);
    std::mt19937_64 rng(1);
    std::normal_distribution<float> nd;
    std::vector<float> x(4 * 20);
    for (auto& v : x)
      v = nd(rng);
    tensor_pack p;
    p.add("x", tensor_dtype::f32, {4, 20}, x.data());
    auto t = task_of(1, p);
    auto [mc, mg] = both(*mlp_file, {&t});
    CHECK(values<int32_t>(*mc[0], "label") == values<int32_t>(*mg[0], "label"));
    auto pc = values<float>(*mc[0], "score"), pg = values<float>(*mg[0], "score");
    for (size_t i = 0; i < pc.size(); ++i)
      CHECK(pg[i] == doctest::Approx(pc[i]).epsilon(1e-4));
    // CenterNet (symmetric padding) at 64x64: the same number of boxes, the best one close.
    kernels::centernet_config cfg;
    cfg.num_classes = 3;
    auto net = kernels::centernet::random(cfg, 9);
    auto cn = net.encode({{"comb.kind", "centernet"}, {"comb.num_classes", "3"}});
    REQUIRE(cn);
    std::vector<uint8_t> img(64 * 64 * 3);
    for (auto& v : img)
      v = static_cast<uint8_t>(rng());
    tensor_pack q;
    q.add("images", tensor_dtype::u8, {1, 64, 64, 3}, img.data());
    auto tq = task_of(2, q);
    auto [cc, cg] = both(*cn, {&tq});
    CHECK(values<int32_t>(*cc[0], "count") == values<int32_t>(*cg[0], "count"));
    auto bc = values<float>(*cc[0], "boxes"), bg = values<float>(*cg[0], "boxes");
    for (int i = 0; i < 5; ++i)
      CHECK(bg[i] == doctest::Approx(bc[i]).epsilon(1e-3));
    // MobileNetV2 on the shared images: the same top-1.
    if (!std::filesystem::exists(tflite_path())) {
      MESSAGE("model absent at " << tflite_path() << ": skipping MobileNetV2 on CUDA");
      return;
    }
    std::vector<task_tensors> tasks;
    for (auto name : {"cat.bmp", "grace_hopper.bmp", "bird.bmp"}) {
      auto img = kernels::load_bmp(data_dir() + "/models/" + name);
      REQUIRE(img);
      auto small = kernels::resize_nearest(*img, 224, 224);
      tensor_pack r;
      r.add("images", tensor_dtype::u8, {1, 224, 224, 3}, small.rgb.data());
      tasks.push_back(task_of(tasks.size() + 1, std::move(r)));
    }
    auto [vc, vg] = both(read_file(tflite_path()), {&tasks[0], &tasks[1], &tasks[2]});
    for (size_t i = 0; i < 3; ++i)
      CHECK(values<int32_t>(*vc[i], "label") == values<int32_t>(*vg[i], "label"));
  }
}
