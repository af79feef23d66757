// Tests of the detector's TextCNN: gradients against finite differences, learning a toy
// rule, safetensors round trip, one-file detector round trip, bad input.
#include "apps/anomaly/detail/textcnn_cpu.hpp"
#include "apps/anomaly/detector.hpp"
#include "apps/anomaly/textcnn_classifier.hpp"
#include "apps/anomaly/trainer.hpp"
#include "base/errc.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <random>

using namespace comb;
using namespace comb::anomaly;

namespace {

std::vector<int32_t> random_tokens(std::mt19937& rng, int batch, int len, int vocab) {
  std::vector<int32_t> t(static_cast<size_t>(batch) * len);
  for (auto& x : t)
    x = static_cast<int32_t>(rng() % static_cast<unsigned>(vocab));
  return t;
}

} // namespace

TEST_SUITE("apps.anomaly.textcnn") {

TEST_CASE("gradients match central finite differences") {
  detail::textcnn_shape s;
  s.vocab = 12;
  s.embed = 5;
  s.kernels = {2, 3};
  s.filters = 4;
  s.dropout = 0.0f;
  detail::textcnn_cpu net(s, 3);
  std::mt19937 rng(5);
  int batch = 3, len = 7;
  auto tokens = random_tokens(rng, batch, len, s.vocab);
  for (auto& t : tokens)
    t = 1 + t % (s.vocab - 1); // the padding row (id 0) is frozen by design
  std::vector<int32_t> labels = {0, 1, 1};
  std::vector<float> probs;
  net.forward(tokens.data(), batch, len, labels.data(), true, probs);
  detail::textcnn_params grad;
  net.backward(tokens.data(), batch, len, labels.data(), grad);
  // Collect (param pointer, grad pointer) pairs.
  std::vector<float*> ps;
  std::vector<const float*> gs;
  std::vector<size_t> ns;
  net.params().each([&](float* p, size_t n) {
    ps.push_back(p);
    ns.push_back(n);
  });
  grad.each([&](float* g, size_t) { gs.push_back(g); });
  size_t checked = 0, bad = 0;
  for (size_t t = 0; t < ps.size(); ++t)
    for (size_t i = 0; i < ns[t]; i += 1 + ns[t] / 40) {
      float old = ps[t][i];
      const float h = 1e-3f;
      ps[t][i] = old + h;
      (void) net.params(); // marks packed weights stale
      float lp = net.forward(tokens.data(), batch, len, labels.data(), false, probs);
      ps[t][i] = old - h;
      (void) net.params();
      float lm = net.forward(tokens.data(), batch, len, labels.data(), false, probs);
      ps[t][i] = old;
      (void) net.params();
      float num = (lp - lm) / (2 * h);
      float ana = gs[t][i];
      ++checked;
      if (std::fabs(num - ana) > 2e-3f + 2e-2f * std::fabs(num)) {
        if (++bad <= 5)
          MESSAGE("tensor " << t << " index " << i << ": numeric " << num << " analytic "
                            << ana);
      }
    }
  CHECK(checked > 50);
  // Max-pooling has kinks: allow a tiny share of mismatches where a window ties.
  CHECK(bad * 50 <= checked);
}

TEST_CASE("inference through the vocabulary table equals the training forward") {
  detail::textcnn_shape s;
  s.vocab = 300;
  s.embed = 16;
  s.kernels = {2, 3, 4};
  s.filters = 24;
  s.dropout = 0.0f; // the training forward is then deterministic and comparable
  detail::textcnn_cpu net(s, 11);
  std::mt19937 rng(7);
  for (int batch : {1, 40}) { // 40: split over the cores
    int len = 33;
    auto tokens = random_tokens(rng, batch, len, s.vocab);
    std::vector<int32_t> labels(static_cast<size_t>(batch), 1);
    std::vector<float> trained, inferred;
    float lt = net.forward(tokens.data(), batch, len, labels.data(), true, trained);
    float li = net.forward(tokens.data(), batch, len, labels.data(), false, inferred);
    CHECK(li == doctest::Approx(lt).epsilon(1e-5));
    REQUIRE(trained.size() == inferred.size());
    for (size_t i = 0; i < trained.size(); ++i)
      CHECK(inferred[i] == doctest::Approx(trained[i]).epsilon(1e-5));
  }
  // New weights invalidate the table: inference before and after a change differ, and after
  // it agrees with the training forward.
  std::vector<int32_t> tokens(20, 3), labels(1, 0);
  std::vector<float> before, after, trained;
  net.forward(tokens.data(), 1, 20, labels.data(), false, before);
  for (auto& x : net.params().emb)
    x *= 2.0f;
  net.forward(tokens.data(), 1, 20, labels.data(), false, after);
  net.forward(tokens.data(), 1, 20, labels.data(), true, trained);
  CHECK(after[0] != doctest::Approx(before[0]).epsilon(1e-4));
  CHECK(after[0] == doctest::Approx(trained[0]).epsilon(1e-5));
}

TEST_CASE("the model learns a toy rule and round-trips through safetensors") {
  textcnn_options o;
  std::string engine;
  SUBCASE("fused engine") {
    engine = "fused";
  }
  SUBCASE("comb::kernels engine") {
    engine = "kernels";
  }
  o.engine = engine;
  o.prefer_gpu = false;
  o.vocab = 30;
  o.embed = 8;
  o.filters = 8;
  o.seed = 9;
  auto m = textcnn_classifier::create(o);
  REQUIRE(m);
  std::mt19937 rng(1);
  // Label 1 iff the sequence contains the bigram (7, 8).
  auto make = [&](int n, std::vector<int32_t>& tokens, std::vector<int32_t>& labels) {
    int len = 12;
    tokens = random_tokens(rng, n, len, 6); // ids 0..5 never form the bigram
    labels.assign(static_cast<size_t>(n), 0);
    for (int b = 0; b < n; ++b)
      if (rng() % 2) {
        int at = static_cast<int>(rng() % (len - 1));
        tokens[static_cast<size_t>(b) * len + at] = 7;
        tokens[static_cast<size_t>(b) * len + at + 1] = 8;
        labels[static_cast<size_t>(b)] = 1;
      }
  };
  std::vector<int32_t> tokens, labels;
  float first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    make(32, tokens, labels);
    auto loss = m->train_step(tokens, 32, 12, labels);
    REQUIRE(loss);
    if (step == 0)
      first = *loss;
    last = *loss;
  }
  CHECK(last < first * 0.5f); // one batch's loss: noisy
  make(200, tokens, labels);
  auto p = m->predict(tokens, 200, 12);
  REQUIRE(p);
  int correct = 0;
  for (int b = 0; b < 200; ++b)
    correct += ((*p)[static_cast<size_t>(b)] >= 0.5f) == (labels[static_cast<size_t>(b)] == 1);
  CHECK(correct >= 190);
  auto bytes = m->save({{"who", "test"}});
  REQUIRE(bytes);
  std::map<std::string, std::string> meta;
  auto back = textcnn_classifier::load(*bytes, &meta);
  REQUIRE(back);
  CHECK(meta["who"] == "test");
  CHECK(back->options().engine == engine);
  auto q = back->predict(tokens, 200, 12);
  REQUIRE(q);
  CHECK(*q == *p);
  // Bad input.
  CHECK_FALSE(m->predict({1, 2, 3}, 1, 3)); // shorter than the widest kernel (4)
  CHECK_FALSE(m->predict({1, 2, 3, 99}, 1, 4));
  CHECK_FALSE(m->predict({1, 2, 3, 4}, 2, 4));
  CHECK_FALSE(m->train_step({1, 2, 3, 4}, 1, 4, {2}));
  CHECK_FALSE(textcnn_classifier::load("", nullptr));
  CHECK_FALSE(textcnn_classifier::load(std::string(16, '\xff'), nullptr));
  auto cut = bytes->substr(0, bytes->size() - 10);
  auto e = textcnn_classifier::load(cut, nullptr);
  REQUIRE_FALSE(e);
  CHECK((is(e.error(), errc::bad_model) || is(e.error(), errc::corrupt_data)));
  o.kernel_sizes = {0};
  CHECK_FALSE(textcnn_classifier::create(o));
}

TEST_CASE("training is reproducible with a fixed seed") {
  auto run = [] {
    textcnn_options o;
    o.vocab = 20;
    o.embed = 4;
    o.filters = 4;
    o.seed = 4;
    auto m = textcnn_classifier::create(o);
    std::mt19937 rng(2);
    std::vector<float> losses;
    for (int i = 0; i < 10; ++i) {
      auto t = random_tokens(rng, 8, 6, 20);
      std::vector<int32_t> y(8);
      for (auto& v : y)
        v = static_cast<int32_t>(rng() % 2);
      losses.push_back(*m->train_step(t, 8, 6, y));
    }
    return losses;
  };
  CHECK(run() == run());
}

TEST_CASE("a detector is one file: tokenizer, config and weights") {
  std::vector<std::string> corpus = {"GET /index.jsp?id=1 HTTP/1.1 Host: a",
                                     "GET /index.jsp?id=2 HTTP/1.1 Host: a",
                                     "POST /login.jsp HTTP/1.1 Host: a user=bob"};
  std::vector<std::string_view> views(corpus.begin(), corpus.end());
  auto tok = bbpe_tokenizer::train(views, 300);
  REQUIRE(tok);
  detector_config cfg;
  cfg.vocab_size = 300;
  cfg.max_tokens = 64;
  cfg.text.cookie = text_options::cookie_mode::drop;
  cfg.model.vocab = 300;
  cfg.model.embed = 8;
  cfg.model.filters = 6;
  auto m = textcnn_classifier::create(cfg.model);
  REQUIRE(m);
  detector d{std::move(*tok), std::move(*m), cfg};
  std::vector<std::string_view> reqs = {"GET /index.jsp?id=1 HTTP/1.1\r\nHost: a\r\n\r\n",
                                        "\x01\x02 binary garbage", ""};
  std::vector<bool> parsed;
  auto p = d.score_raw(reqs, &parsed);
  REQUIRE(p);
  REQUIRE(p->size() == 3);
  CHECK(parsed[0]);
  CHECK_FALSE(parsed[1]);
  CHECK_FALSE(parsed[2]);
  for (float x : *p)
    CHECK((x >= 0.0f && x <= 1.0f));
  // Huge input is truncated to max_tokens.
  CHECK(d.encode_text(std::string(100000, 'x')).size() == 64);
  auto path = (std::filesystem::temp_directory_path() / "comb_anomaly_detector.safetensors")
                .string();
  REQUIRE_FALSE(d.save(path));
  auto back = detector::load(path);
  REQUIRE_MESSAGE(back, describe(back.error()));
  CHECK(back->config().max_tokens == 64);
  CHECK(back->config().text.cookie == text_options::cookie_mode::drop);
  CHECK(back->tokenizer().merges() == d.tokenizer().merges());
  auto q = back->score_raw(reqs);
  REQUIRE(q);
  CHECK(*q == *p);
  std::filesystem::remove(path);
  auto missing = detector::load(path);
  REQUIRE_FALSE(missing);
  CHECK(describe(missing.error()).find(path) != std::string::npos);
}

} // TEST_SUITE
