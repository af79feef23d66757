// kernels.models.textcnn_fused: the fused CPU inference engine against the model's op-by-op
// forward on the reference backend (plain loops) and on the CPU backend, on random weights
// and tokens, at 1e-4 + |ref| * eps; its table follows weight changes; rows of their own
// lengths score as each row alone; bad batches get clear errors.
#include "kernels/models/textcnn_fused.hpp"

#include "kernels/reference_backend.hpp"
#include "tests/kernels/kernel_check.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <random>

using namespace comb::kernels;
using namespace comb::kernels::test;

namespace {

/// Overwrites every weight with uniform values in [-scale, scale).
void randomize(textcnn& m, std::mt19937_64& rng, float scale) {
  for (auto& [name, t] : m.parameters())
    *t = random_f32(t->shape(), rng, -scale, scale);
}

/// Reference probabilities [batch, classes] of `m`'s weights, op by op on `be`.
tensor reference_forward(textcnn& m, const std::shared_ptr<backend>& be, const tensor& tokens) {
  auto r = textcnn::create(m.config(), be);
  REQUIRE(r);
  REQUIRE(!r->copy_weights_from(m));
  auto p = r->forward(tokens);
  REQUIRE(p);
  return host(*p);
}

tensor fused_forward(textcnn_fused& engine, const textcnn& m, const tensor& tokens) {
  std::vector<float> probs;
  auto err = engine.forward(m, tokens.data<int32_t>(), tokens.dim(0), tokens.dim(1), probs);
  REQUIRE_MESSAGE(!err, comb::describe(err));
  auto t = tensor::from({tokens.dim(0), m.config().classes}, probs);
  REQUIRE(t);
  return *t;
}

} // namespace

TEST_SUITE("kernels.models.textcnn_fused") {
  TEST_CASE("the fused engine matches the op-by-op forward on random weights and tokens") {
    auto ref = std::make_shared<reference_backend>();
    auto cpu = default_backend(/*prefer_gpu=*/false);
    std::mt19937_64 rng(21);
    struct shape_case {
      int64_t vocab, embed, filters, classes;
      std::vector<int64_t> kernels;
      float scale;
    };
    for (const auto& sc :
         {shape_case{300, 16, 24, 2, {2, 3, 4}, 0.5f}, shape_case{50, 7, 5, 3, {1, 5}, 0.5f},
          shape_case{1000, 64, 100, 2, {2, 3, 4}, 0.2f}}) {
      textcnn_config cfg;
      cfg.vocab = sc.vocab, cfg.embed = sc.embed, cfg.filters = sc.filters;
      cfg.classes = sc.classes, cfg.kernel_sizes = sc.kernels, cfg.seq_len = 64;
      auto m = textcnn::create(cfg, cpu);
      REQUIRE(m);
      // Weights large enough that the softmax is not flat and ReLU cuts some maxima.
      randomize(*m, rng, sc.scale);
      textcnn_fused engine;
      for (auto [batch, len] : {std::pair<int64_t, int64_t>{1, 5}, {3, 33}, {40, 17}, {64, 64}}) {
        CAPTURE(sc.vocab);
        CAPTURE(batch);
        CAPTURE(len);
        auto tokens = random_i32({batch, len}, rng, static_cast<int32_t>(sc.vocab));
        auto got = fused_forward(engine, *m, tokens);
        CHECK(mismatches("fused vs reference", reference_forward(*m, ref, tokens), got) == 0);
        CHECK(mismatches("fused vs cpu", reference_forward(*m, cpu, tokens), got) == 0);
      }
    }
  }

  TEST_CASE("the table follows the model's weights") {
    textcnn_config cfg;
    cfg.vocab = 40, cfg.embed = 8, cfg.filters = 6, cfg.seq_len = 12, cfg.dropout = 0;
    cfg.adam.lr = 0.05f;
    auto m = textcnn::create(cfg, default_backend(/*prefer_gpu=*/false));
    REQUIRE(m);
    auto ref = std::make_shared<reference_backend>();
    std::mt19937_64 rng(3);
    auto tokens = random_i32({8, 12}, rng, 40);
    auto labels = random_i32({8}, rng, 2);
    textcnn_fused engine;
    auto before = fused_forward(engine, *m, tokens);
    // A training step changes the weights: the engine must not score with the old table.
    REQUIRE(m->train_step(tokens, labels));
    auto after = fused_forward(engine, *m, tokens);
    CHECK(mismatches("after a step", reference_forward(*m, ref, tokens), after) == 0);
    bool changed = false;
    for (int64_t i = 0; i < before.numel(); ++i)
      changed |= std::fabs(before.data<float>()[i] - after.data<float>()[i]) > 1e-3f;
    CHECK(changed);
    // Writing through parameters() counts as a change too.
    auto version = m->weights_version();
    randomize(*m, rng, 0.5f);
    CHECK(m->weights_version() != version);
    CHECK(mismatches("after new weights", reference_forward(*m, ref, tokens),
                     fused_forward(engine, *m, tokens))
          == 0);
    // One engine, two models: each gets its own table.
    auto other = textcnn::create(cfg, default_backend(/*prefer_gpu=*/false));
    REQUIRE(other);
    CHECK(other->weights_version() != m->weights_version());
    CHECK(mismatches("other model", reference_forward(*other, ref, tokens),
                     fused_forward(engine, *other, tokens))
          == 0);
  }

  TEST_CASE("rows of their own lengths score as each row alone, padding unread") {
    textcnn_config cfg;
    cfg.vocab = 60, cfg.embed = 8, cfg.filters = 6, cfg.seq_len = 32;
    auto m = textcnn::create(cfg, default_backend(/*prefer_gpu=*/false));
    REQUIRE(m);
    std::mt19937_64 rng(5);
    randomize(*m, rng, 0.5f);
    const int64_t batch = 12, len = 30;
    auto tokens = random_i32({batch, len}, rng, 60);
    std::vector<int64_t> lengths;
    for (int64_t b = 0; b < batch; ++b)
      lengths.push_back(4 + (b * 7) % (len - 3)); // 4..30
    textcnn_fused engine;
    std::vector<float> probs;
    REQUIRE(!engine.forward(*m, tokens.data<int32_t>(), batch, len, lengths.data(), probs));
    size_t padding_matters = 0;
    for (int64_t b = 0; b < batch; ++b) {
      CAPTURE(b);
      const int32_t* row = tokens.data<int32_t>() + b * len;
      std::vector<float> alone, full;
      REQUIRE(!engine.forward(*m, row, 1, lengths[static_cast<size_t>(b)], alone));
      REQUIRE(!engine.forward(*m, row, 1, len, full));
      for (int64_t k = 0; k < cfg.classes; ++k)
        CHECK(probs[static_cast<size_t>(b * cfg.classes + k)] == alone[static_cast<size_t>(k)]);
      padding_matters += alone != full;
    }
    // The tokens past a row's length change its score when read: the lengths are used.
    CHECK(padding_matters > 0);
    lengths[3] = 3; // below the widest kernel
    auto err = engine.forward(*m, tokens.data<int32_t>(), batch, len, lengths.data(), probs);
    REQUIRE(err);
    CHECK(comb::describe(err).find("row 3 has length 3") != std::string::npos);
    lengths[3] = len + 1;
    CHECK(engine.forward(*m, tokens.data<int32_t>(), batch, len, lengths.data(), probs));
  }

  TEST_CASE("bad batches get clear errors") {
    textcnn_config cfg;
    cfg.vocab = 20, cfg.embed = 4, cfg.filters = 3, cfg.seq_len = 12;
    auto m = textcnn::create(cfg);
    REQUIRE(m);
    textcnn_fused engine;
    auto out_of_vocab = engine.predict(*m, std::vector<int32_t>(12, 25), 1);
    REQUIRE(!out_of_vocab);
    CHECK(comb::describe(out_of_vocab.error()).find("token 25") != std::string::npos);
    auto negative = engine.predict(*m, std::vector<int32_t>(12, -1), 1);
    CHECK(!negative);
    auto too_short = engine.predict(*m, std::vector<int32_t>{1, 2, 3}, 1);
    REQUIRE(!too_short);
    CHECK(comb::describe(too_short.error()).find("shorter than kernel") != std::string::npos);
    CHECK(!engine.predict(*m, std::vector<int32_t>(13, 1), 2));
    CHECK(!engine.predict(*m, {}, 0));
    auto ok = engine.predict(*m, std::vector<int32_t>(24, 1), 2);
    REQUIRE(ok);
    CHECK(ok->size() == 4);
  }

} // TEST_SUITE
