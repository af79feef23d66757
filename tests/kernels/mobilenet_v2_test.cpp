// Tests for kernels/models/mobilenet_v2: top-1 on the shared images with the TFLite model
// (plain f32 and with activations re-quantized), rejection of mismatched graphs, batch
// consistency and batch-norm folding.
#include "kernels/image.hpp"
#include "kernels/models/mobilenet_v2.hpp"
#include "kernels/reference_backend.hpp"

#include "tests/kernels/kernel_check.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

using namespace comb;
using namespace comb::kernels;

namespace {

std::string data_dir() {
  if (auto env = std::getenv("COMB_DATA_DIR"))
    return env;
  return std::string(COMB_SOURCE_DIR) + "/../shared/data";
}

std::string model_path() {
  return data_dir() + "/models/mobilenet_v2_1.0_224_quant.tflite";
}

std::vector<std::string> labels() {
  std::ifstream in(data_dir() + "/models/imagenet_labels.txt");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

std::vector<float> input_of(const mobilenet_v2& m, const std::string& name) {
  auto img = load_bmp(data_dir() + "/models/" + name);
  REQUIRE_MESSAGE(img, comb::test::why(img));
  auto small = resize_nearest(*img, 224, 224);
  std::vector<float> x(224 * 224 * 3);
  to_float_nhwc(small, m.input_scale(), m.input_zero_point(), x.data());
  return x;
}

int argmax(const float* x, int n) {
  return static_cast<int>(std::max_element(x, x + n) - x);
}

} // namespace

TEST_SUITE("kernels.mobilenet_v2") {
  TEST_CASE("the TFLite MobileNetV2 gives the reference top-1 on the shared images") {
    if (!std::filesystem::exists(model_path())) {
      MESSAGE("model absent at " << model_path() << ": skipping (see shared/data/README.md)");
      return;
    }
    auto m = mobilenet_v2::load(model_path());
    REQUIRE_MESSAGE(m, comb::test::why(m));
    CHECK(m->config().num_classes == 1001);
    CHECK(m->blocks().size() == 17);
    auto names = labels();
    REQUIRE(names.size() == 1001);
    struct expect {
      const char* file;
      int top1;
      const char* label;
    };
    const expect cases[] = {{"cat.bmp", 286, "Egyptian cat"},
                            {"grace_hopper.bmp", 653, "military uniform"},
                            {"bird.bmp", 20, "chickadee"}};
    for (bool fake_quant : {false, true}) {
      m->set_fake_quant(fake_quant);
      // All three images in one batch of 3: also checks batched execution.
      std::vector<float> batch;
      for (auto& c : cases) {
        auto x = input_of(*m, c.file);
        batch.insert(batch.end(), x.begin(), x.end());
      }
      auto l = m->logits(batch.data(), 3);
      REQUIRE_MESSAGE(l, comb::test::why(l));
      REQUIRE(l->size() == 3 * 1001u);
      for (int i = 0; i < 3; ++i) {
        int top = argmax(l->data() + i * 1001, 1001);
        INFO(cases[i].file << " fake_quant=" << fake_quant << " -> " << top << " " << names[top]);
        CHECK(top == cases[i].top1);
        CHECK(names[top] == cases[i].label);
      }
      // Batch 1 gives the same scores as the row of the batch.
      auto one = m->logits(batch.data() + 224 * 224 * 3, 1);
      REQUIRE(one);
      for (int j = 0; j < 1001; j += 50)
        CHECK((*one)[j] == doctest::Approx((*l)[1001 + j]).epsilon(1e-4));
    }
  }

  TEST_CASE("graphs that are not MobileNetV2 are rejected naming the operator") {
    if (!std::filesystem::exists(model_path())) {
      MESSAGE("model absent at " << model_path() << ": skipping");
      return;
    }
    auto tf = load_tflite(model_path());
    REQUIRE(tf);
    {
      auto t = *tf;
      t.operators[3].options.stride_h = 2; // first expand conv
      auto r = mobilenet_v2::from_tflite(t);
      REQUIRE_FALSE(r);
      CHECK(is(r.error(), errc::bad_model));
      CHECK(describe(r.error()).find("operator 3") != std::string::npos);
    }
    {
      auto t = *tf;
      t.tensors[t.operators[1].inputs[1]].shape = {1, 3, 3, 31};
      auto r = mobilenet_v2::from_tflite(t);
      REQUIRE_FALSE(r);
      CHECK(describe(r.error()).find("filter") != std::string::npos);
    }
    {
      auto t = *tf;
      t.operators.erase(t.operators.begin() + 9); // the first residual ADD
      auto r = mobilenet_v2::from_tflite(t);
      REQUIRE_FALSE(r);
      CHECK(describe(r.error()).find("ADD") != std::string::npos);
    }
    {
      auto t = *tf;
      t.operators.resize(20); // truncated graph
      auto r = mobilenet_v2::from_tflite(t);
      REQUIRE_FALSE(r);
      CHECK(is(r.error(), errc::bad_model));
    }
    {
      auto t = *tf;
      // A filter whose buffer is shorter than its shape says.
      auto& buf = t.buffers[t.tensors[t.operators[0].inputs[1]].buffer];
      buf.size -= 1;
      auto r = mobilenet_v2::from_tflite(t);
      REQUIRE_FALSE(r);
      CHECK(describe(r.error()).find("bytes") != std::string::npos);
    }
  }

  TEST_CASE("a random MobileNetV2 runs at several sizes and batch rows are independent") {
    mobilenet_v2_config cfg;
    cfg.num_classes = 10;
    cfg.tf_padding = false;
    auto m = mobilenet_v2::random(cfg, 42);
    CHECK(m.flops() == doctest::Approx(2 * 300.8e6).epsilon(0.02)); // ~300 M multiply-adds
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> d(-1, 1);
    std::vector<float> x(2 * 96 * 64 * 3);
    for (auto& v : x)
      v = d(rng);
    auto both = m.logits(x.data(), 2, 96, 64);
    REQUIRE_MESSAGE(both, comb::test::why(both));
    REQUIRE(both->size() == 20u);
    auto second = m.logits(x.data() + 96 * 64 * 3, 1, 96, 64);
    REQUIRE(second);
    for (int j = 0; j < 10; ++j)
      CHECK((*second)[j] == doctest::Approx((*both)[10 + j]).epsilon(1e-4));
    auto f = m.features(x.data(), 2, 96, 64);
    REQUIRE(f);
    CHECK(f->h == 3);
    CHECK(f->w == 2);
    CHECK(f->c == 1280);
    auto bad = m.logits(x.data(), 1, 8, 8);
    REQUIRE_FALSE(bad);
    CHECK(is(bad.error(), errc::invalid_argument));
  }

  TEST_CASE("through the backend interface the model equals the fused CPU path on every backend") {
    reference_backend ref;
    std::vector<backend*> list = {&ref};
    for (auto& b : backends())
      list.push_back(b.get());
    for (bool tf_padding : {true, false}) {
      mobilenet_v2_config cfg;
      cfg.num_classes = 10;
      cfg.tf_padding = tf_padding;
      auto m = mobilenet_v2::random(cfg, 7);
      std::mt19937_64 rng(6);
      auto x = kernels::test::random_f32({2, 64, 48, 3}, rng);
      auto want = m.logits(x.data<float>(), 2, 64, 48);
      REQUIRE(want);
      auto want_t = tensor::from({2, 10}, *want);
      REQUIRE(want_t);
      auto fast_f = m.features(x.data<float>(), 2, 64, 48);
      REQUIRE(fast_f);
      auto fast_ft = tensor::from({2, fast_f->h, fast_f->w, fast_f->c}, fast_f->data);
      REQUIRE(fast_ft);
      for (auto* be : list) {
        auto xd = be->device() == device::cpu ? caf::expected<tensor>{x} : x.to(be->device());
        REQUIRE(xd);
        auto got = m.logits(*be, *xd);
        if (!got && is(got.error(), errc::unsupported)) {
          MESSAGE(be->name() << " cannot run MobileNetV2 (tf_padding " << tf_padding
                             << "): " << describe(got.error()) << "; skipped");
          continue;
        }
        REQUIRE_MESSAGE(got, be->name() << ": " << (got ? "" : comb::test::why(got)));
        // 53 layers deep: float sums in another order drift more than one op's would.
        auto what = be->name() + " logits, tf_padding " + std::to_string(tf_padding);
        CHECK_MESSAGE(kernels::test::mismatches(what, *want_t, *got, 1e-3f) == 0, what);
        auto f = m.features(*be, *xd);
        REQUIRE(f);
        what = be->name() + " features, tf_padding " + std::to_string(tf_padding);
        CHECK_MESSAGE(kernels::test::mismatches(what, *fast_ft, *f, 1e-3f) == 0, what);
      }
    }
    mobilenet_v2_config cfg;
    auto m = mobilenet_v2::random(cfg, 1);
    auto bad = m.logits(cpu(), tensor::zeros({1, 16, 16, 3}));
    REQUIRE_FALSE(bad);
    CHECK(is(bad.error(), errc::invalid_argument));
  }

  TEST_CASE("fold_batch_norm equals convolution followed by batch-norm") {
    // Two output channels, weights HWIO with 3 inputs: w[i][o].
    std::vector<float> w = {1, 2, 3, 4, 5, 6}, bias = {0.5f, -1};
    const float x[3] = {0.3f, -0.7f, 2.0f};
    const float gamma[2] = {1.5f, 0.5f}, beta[2] = {0.1f, -0.2f}, mean[2] = {0.4f, 1.0f},
                var[2] = {2.0f, 0.25f};
    float expect[2];
    for (int o = 0; o < 2; ++o) {
      float conv = bias[o];
      for (int i = 0; i < 3; ++i)
        conv += x[i] * w[i * 2 + o];
      expect[o] = gamma[o] * (conv - mean[o]) / std::sqrt(var[o] + 1e-3f) + beta[o];
    }
    fold_batch_norm(w, bias, 2, gamma, beta, mean, var, 1e-3f);
    for (int o = 0; o < 2; ++o) {
      float got = bias[o];
      for (int i = 0; i < 3; ++i)
        got += x[i] * w[i * 2 + o];
      CHECK(got == doctest::Approx(expect[o]).epsilon(1e-5));
    }
  }

} // TEST_SUITE
