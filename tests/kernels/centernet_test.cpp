// Tests for kernels/models/centernet: peak decoding on synthetic heatmaps with known peaks,
// and the detector's forward shapes at 512x512.
#include "kernels/models/centernet.hpp"
#include "kernels/reference_backend.hpp"

#include "tests/kernels/kernel_check.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <random>
#include <tuple>
#include <unistd.h>

using namespace comb;
using namespace comb::kernels;

TEST_SUITE("kernels.centernet") {
  TEST_CASE("decode_centernet finds known peaks, suppresses their neighbours and builds boxes") {
    const int h = 32, w = 24, classes = 3;
    std::vector<float> heat(h * w * classes), size(h * w * 2), offset(h * w * 2);
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> noise(0.0f, 0.05f);
    for (auto& v : heat)
      v = noise(rng);
    auto at = [&](int y, int x, int c) -> float& { return heat[(y * w + x) * classes + c]; };
    // Peak A: class 1 at (x 5, y 7), score 0.9, with strong neighbours that are not peaks.
    at(7, 5, 1) = 0.9f;
    at(7, 6, 1) = 0.7f;
    at(8, 5, 1) = 0.6f;
    // Peak B: class 2 at (x 20, y 30), score 0.8; box 4 x 6 cells, offset (0.25, 0.5).
    at(30, 20, 2) = 0.8f;
    int cell_b = 30 * w + 20;
    size[cell_b * 2 + 0] = 4.0f;
    size[cell_b * 2 + 1] = 6.0f;
    offset[cell_b * 2 + 0] = 0.25f;
    offset[cell_b * 2 + 1] = 0.5f;
    // Peak C: class 0 at the corner (0, 0), score 0.3 (border handling).
    at(0, 0, 0) = 0.3f;
    int cell_a = 7 * w + 5;
    size[cell_a * 2 + 0] = 2.0f;
    size[cell_a * 2 + 1] = 2.0f;

    auto d = decode_centernet(heat.data(), size.data(), offset.data(), h, w, classes, 5, 4.0f);
    REQUIRE(d.size() == 5);
    CHECK(d[0].cls == 1);
    CHECK(d[0].score == doctest::Approx(0.9f));
    CHECK(d[0].x0 == doctest::Approx((5 - 1.0f) * 4));
    CHECK(d[0].y1 == doctest::Approx((7 + 1.0f) * 4));
    CHECK(d[1].cls == 2);
    CHECK(d[1].score == doctest::Approx(0.8f));
    CHECK(d[1].x0 == doctest::Approx((20.25f - 2.0f) * 4));
    CHECK(d[1].x1 == doctest::Approx((20.25f + 2.0f) * 4));
    CHECK(d[1].y0 == doctest::Approx((30.5f - 3.0f) * 4));
    CHECK(d[1].y1 == doctest::Approx((30.5f + 3.0f) * 4));
    CHECK(d[2].cls == 0);
    CHECK(d[2].score == doctest::Approx(0.3f));
    // The 0.7 and 0.6 neighbours of peak A are suppressed; what follows is noise.
    for (size_t i = 3; i < d.size(); ++i) {
      CHECK(d[i].score < 0.06f);
      CHECK(d[i].score <= d[i - 1].score);
    }
    // A threshold keeps only the real peaks.
    auto strong = decode_centernet(heat.data(), size.data(), offset.data(), h, w, classes, 100,
                                   4.0f, 0.25f);
    CHECK(strong.size() == 3);
    // k larger than the number of peaks, and k = 0.
    CHECK(
      decode_centernet(heat.data(), size.data(), offset.data(), h, w, classes, 0, 4.0f).empty());
  }

  TEST_CASE("a plateau yields one detection per plateau cell that ties, lowest index first") {
    const int h = 4, w = 4;
    std::vector<float> heat(h * w, 0.0f), size(h * w * 2, 1.0f), offset(h * w * 2, 0.0f);
    heat[1 * w + 1] = 0.5f;
    heat[1 * w + 2] = 0.5f;
    auto d = decode_centernet(heat.data(), size.data(), offset.data(), h, w, 1, 2, 1.0f, 0.1f);
    REQUIRE(d.size() == 2);
    CHECK(d[0].x0 == doctest::Approx(0.5f)); // cell (1, 1) first
    CHECK(d[1].x0 == doctest::Approx(1.5f));
  }

  TEST_CASE("the detector's forward gives stride-4 maps at 512x512 and decodes to boxes") {
    centernet_config cfg;
    cfg.num_classes = 80;
    auto net = centernet::random(cfg, 11);
    std::vector<float> x(512 * 512 * 3);
    std::mt19937 rng(2);
    std::uniform_real_distribution<float> d(-1, 1);
    for (auto& v : x)
      v = d(rng);
    auto out = net.forward(x.data(), 1, 512, 512);
    REQUIRE_MESSAGE(out, comb::test::why(out));
    CHECK(out->n == 1);
    CHECK(out->h == 128);
    CHECK(out->w == 128);
    CHECK(out->classes == 80);
    CHECK(out->heat.size() == 128u * 128 * 80);
    CHECK(out->size.size() == 128u * 128 * 2);
    CHECK(out->offset.size() == 128u * 128 * 2);
    for (size_t i = 0; i < out->heat.size(); i += 997) {
      CHECK(out->heat[i] > 0.0f);
      CHECK(out->heat[i] < 1.0f);
    }
    auto dets = decode_centernet(out->heat.data(), out->size.data(), out->offset.data(), out->h,
                                 out->w, out->classes, 100, 4.0f);
    CHECK(dets.size() == 100);
    for (size_t i = 1; i < dets.size(); ++i)
      CHECK(dets[i].score <= dets[i - 1].score);
    auto bad = net.forward(x.data(), 1, 500, 512);
    REQUIRE_FALSE(bad);
    CHECK(is(bad.error(), errc::invalid_argument));
  }

  TEST_CASE(
    "through the backend interface the detector equals the fused CPU path on every backend") {
    centernet_config cfg;
    cfg.num_classes = 5;
    auto net = centernet::random(cfg, 12);
    std::mt19937_64 rng(3);
    auto x = kernels::test::random_f32({2, 64, 96, 3}, rng);
    auto want = net.forward(x.data<float>(), 2, 64, 96);
    REQUIRE(want);
    auto as_t = [](const std::vector<float>& v) {
      auto t = tensor::zeros({static_cast<int64_t>(v.size())});
      std::copy(v.begin(), v.end(), t.data<float>());
      return t;
    };
    reference_backend ref;
    std::vector<backend*> list = {&ref};
    for (auto& b : backends())
      list.push_back(b.get());
    for (auto* be : list) {
      auto xd = be->device() == device::cpu ? caf::expected<tensor>{x} : x.to(be->device());
      REQUIRE(xd);
      auto got = net.forward(*be, *xd);
      if (!got && is(got.error(), errc::unsupported)) {
        MESSAGE(be->name() << " cannot run the detector: " << comb::test::why(got) << "; skipped");
        continue;
      }
      REQUIRE_MESSAGE(got, be->name() << ": " << (got ? "" : comb::test::why(got)));
      CHECK(got->n == 2);
      CHECK(got->h == 16);
      CHECK(got->w == 24);
      CHECK(got->classes == 5);
      for (auto [name, w, g] : {std::tuple{"heat", &want->heat, &got->heat},
                                std::tuple{"size", &want->size, &got->size},
                                std::tuple{"offset", &want->offset, &got->offset}}) {
        auto what = be->name() + " " + name;
        CHECK_MESSAGE(kernels::test::mismatches(what, as_t(*w), as_t(*g), 1e-3f) == 0, what);
      }
    }
  }

} // TEST_SUITE

#include "kernels/safetensors.hpp"
#include "kernels/tensor.hpp"

#include <filesystem>

TEST_SUITE("kernels.centernet") {
  TEST_CASE("a detector saved to safetensors loads back with identical outputs; bad files fail") {
    centernet_config cfg;
    cfg.num_classes = 3;
    cfg.neck_channels[0] = 32;
    cfg.neck_channels[1] = 16;
    cfg.neck_channels[2] = 16;
    cfg.head_channels = 16;
    auto net = centernet::random(cfg, 21);
    auto dir = std::filesystem::temp_directory_path()
               / ("comb_centernet_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto path = (dir / "det.safetensors").string();
    auto err = net.save(path);
    REQUIRE_MESSAGE(!err, describe(err));
    auto back = centernet::load(path, cfg);
    REQUIRE_MESSAGE(back, comb::test::why(back));
    std::vector<float> x(64 * 96 * 3);
    std::mt19937 rng(4);
    std::uniform_real_distribution<float> d(-1, 1);
    for (auto& v : x)
      v = d(rng);
    auto a = net.forward(x.data(), 1, 64, 96);
    auto b = back->forward(x.data(), 1, 64, 96);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->heat == b->heat);
    CHECK(a->size == b->size);
    CHECK(a->offset == b->offset);
    // A different structure does not load, and says which tensor is wrong.
    auto other = cfg;
    other.num_classes = 4;
    auto wrong = centernet::load(path, other);
    REQUIRE_FALSE(wrong);
    CHECK(is(wrong.error(), errc::bad_model));
    CHECK(describe(wrong.error()).find("heads.heat.out") != std::string::npos);
    // A file without the backbone tensors.
    auto file = load_safetensors(path);
    REQUIRE(file);
    std::vector<std::pair<std::string, const tensor*>> some;
    for (auto& [name, t] : file->tensors)
      if (name.rfind("neck.", 0) == 0)
        some.emplace_back(name, &t);
    auto partial = (dir / "partial.safetensors").string();
    REQUIRE(!save_safetensors(partial, some));
    auto missing = centernet::load(partial, cfg);
    REQUIRE_FALSE(missing);
    CHECK(describe(missing.error()).find("missing") != std::string::npos);
    auto absent = centernet::load((dir / "nope.safetensors").string(), cfg);
    REQUIRE_FALSE(absent);
    CHECK(is(absent.error(), errc::not_found));
    std::filesystem::remove_all(dir);
  }

  TEST_CASE("the detector runs on the ImageNet MobileNetV2 backbone from the TFLite file") {
    std::string dir = std::getenv("COMB_DATA_DIR")
                        ? std::getenv("COMB_DATA_DIR")
                        : std::string(COMB_SOURCE_DIR) + "/../shared/data";
    auto model = dir + "/models/mobilenet_v2_1.0_224_quant.tflite";
    if (!std::filesystem::exists(model)) {
      MESSAGE("model absent at " << model << ": skipping");
      return;
    }
    auto backbone = mobilenet_v2::load(model);
    REQUIRE_MESSAGE(backbone, comb::test::why(backbone));
    centernet_config cfg;
    cfg.num_classes = 2;
    auto net = centernet::with_backbone(std::move(*backbone), cfg, 3);
    std::vector<float> x(128 * 128 * 3, 0.25f);
    auto dets = net.detect(x.data(), 128, 128, 10);
    REQUIRE_MESSAGE(dets, comb::test::why(dets));
    CHECK(dets->size() == 10);
  }

} // TEST_SUITE
