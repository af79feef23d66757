// Tests of the detector's TextCNN (comb::kernels::textcnn; its gradients and the fused
// engine's agreement with the op-by-op forward are tested in tests/kernels): learning a toy
// rule with either engine, safetensors round trip, one-file detector round trip with the
// sequence length saved once, files written before one TextCNN, bad input.
#include "apps/anomaly/detector.hpp"
#include "apps/anomaly/textcnn_classifier.hpp"
#include "apps/anomaly/trainer.hpp"
#include "base/errc.hpp"
#include "kernels/models/textcnn.hpp"
#include "kernels/safetensors.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
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

// Random labels: the training part is learned by heart, the validation loss soon stops
// improving, so every plateau comes.
struct plateau_setup {
  std::vector<std::string> corpus = {"GET /a HTTP/1.1", "POST /b HTTP/1.1 x=1"};
  std::vector<std::vector<int32_t>> seqs;
  std::vector<int> labels;
  std::vector<size_t> train, val;

  plateau_setup() {
    std::mt19937 rng(8);
    seqs.resize(120);
    labels.resize(seqs.size());
    for (size_t i = 0; i < seqs.size(); ++i) {
      seqs[i].resize(6 + rng() % 6);
      for (auto& x : seqs[i])
        x = static_cast<int32_t>(1 + rng() % 255);
      labels[i] = static_cast<int>(rng() % 2);
      (i % 4 == 0 ? val : train).push_back(i);
    }
  }

  detector make() const {
    std::vector<std::string_view> views(corpus.begin(), corpus.end());
    auto tok = bbpe_tokenizer::train(views, 300);
    REQUIRE(tok);
    detector_config cfg;
    cfg.vocab_size = 300;
    cfg.model.vocab = 300;
    cfg.model.embed = 8;
    cfg.model.filters = 8;
    cfg.model.seq_len = 16;
    cfg.model.seed = 3;
    auto m = textcnn_classifier::create(cfg.model);
    REQUIRE(m);
    return detector{std::move(*tok), std::move(*m), cfg};
  }

  train_options options(int drops, int patience = 1, int patience_after_drop = 0) const {
    train_options o;
    o.max_epochs = 60;
    o.batch = 8;
    o.patience = patience;
    o.patience_after_drop = patience_after_drop;
    o.lr_drops = drops;
    o.lr_decay = 0.25f;
    return o;
  }
};

// For each run of epochs at one learning rate: how many of its last epochs brought no
// better validation loss than every epoch before them (the plateau that ended the run).
std::vector<int> epochs_without_better(const train_result& r) {
  std::vector<int> out;
  double best = INFINITY;
  int since = 0;
  for (size_t e = 0; e < r.validation_loss.size(); ++e) {
    if (e > 0 && r.learning_rate[e] != r.learning_rate[e - 1]) {
      out.push_back(since);
      since = 0;
    }
    if (r.validation_loss[e] < best) {
      best = r.validation_loss[e];
      since = 0;
    } else {
      ++since;
    }
  }
  out.push_back(since);
  return out;
}

} // namespace

TEST_SUITE("apps.anomaly.textcnn") {
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

  TEST_CASE("per-sample loss weights: a weight-0 row counts for nothing, equal weights change "
            "nothing") {
    auto fresh = [] {
      textcnn_options o;
      o.vocab = 20;
      o.embed = 4;
      o.filters = 4;
      o.seed = 5;
      o.dropout = 0.0f; // batches of different sizes would draw different dropout masks
      auto m = textcnn_classifier::create(o);
      REQUIRE(m);
      return std::move(*m);
    };
    std::mt19937 rng(3);
    auto two = random_tokens(rng, 2, 6, 20);
    std::vector<int32_t> one(two.begin(), two.begin() + 6);
    std::vector<int32_t> y2 = {1, 0}, y1 = {1};
    auto probe = random_tokens(rng, 4, 6, 20);
    auto after = [&](textcnn_classifier& m) {
      auto p = m.predict(probe, 4, 6);
      REQUIRE(p);
      return *p;
    };
    auto close = [](const std::vector<float>& a, const std::vector<float>& b) {
      for (size_t i = 0; i < a.size(); ++i)
        if (std::fabs(a[i] - b[i]) > 1e-5f)
          return false;
      return a.size() == b.size();
    };
    auto alone = fresh();
    REQUIRE(alone.train_step(one, 1, 6, y1));
    auto zeroed = fresh();
    std::vector<float> w10 = {1.0f, 0.0f};
    REQUIRE(zeroed.train_step(two, 2, 6, y2, &w10));
    auto plain = fresh();
    REQUIRE(plain.train_step(two, 2, 6, y2));
    auto equal = fresh();
    std::vector<float> w33 = {3.0f, 3.0f};
    REQUIRE(equal.train_step(two, 2, 6, y2, &w33));
    CHECK(close(after(zeroed), after(alone)));
    CHECK_FALSE(close(after(plain), after(alone)));
    CHECK(close(after(equal), after(plain)));
    // Bad weights are refused, named.
    auto m = fresh();
    std::vector<float> neg = {1.0f, -1.0f}, zero = {0.0f, 0.0f}, short_w = {1.0f};
    for (auto* w : {&neg, &zero, &short_w}) {
      auto r = m.train_step(two, 2, 6, y2, w);
      REQUIRE_FALSE(r);
      CHECK(is(r.error(), errc::invalid_argument));
    }
    CHECK(augmented_weights(5, 3, 0.5f) == std::vector<float>{1, 1, 1, 0.5f, 0.5f});
    CHECK(augmented_weights(5, 3, 1.0f).empty());
  }

  TEST_CASE("row lengths: a row trains the same however far its batch is padded") {
    auto fresh = [] {
      textcnn_options o;
      o.vocab = 20;
      o.embed = 4;
      o.filters = 4;
      o.seed = 6;
      auto m = textcnn_classifier::create(o);
      REQUIRE(m);
      return std::move(*m);
    };
    std::mt19937 rng(4);
    // Three rows of 4, 7 and 9 tokens, padded to 9 or to 15 with random ids.
    std::vector<int64_t> lengths = {4, 7, 9};
    std::vector<std::vector<int32_t>> rows;
    for (auto n : lengths)
      rows.push_back(random_tokens(rng, 1, static_cast<int>(n), 20));
    auto padded = [&](int len) {
      std::vector<int32_t> t;
      for (auto& r : rows) {
        t.insert(t.end(), r.begin(), r.end());
        for (size_t i = r.size(); i < static_cast<size_t>(len); ++i)
          t.push_back(static_cast<int32_t>(1 + rng() % 19));
      }
      return t;
    };
    std::vector<int32_t> y = {1, 0, 1};
    auto probe = random_tokens(rng, 4, 6, 20);
    auto tight = fresh(), wide = fresh(), unmasked = fresh();
    for (int step = 0; step < 4; ++step) {
      REQUIRE(tight.train_step(padded(9), 3, 9, y, nullptr, &lengths));
      REQUIRE(wide.train_step(padded(15), 3, 15, y, nullptr, &lengths));
      REQUIRE(unmasked.train_step(padded(15), 3, 15, y));
    }
    auto a = tight.predict(probe, 4, 6), b = wide.predict(probe, 4, 6),
         c = unmasked.predict(probe, 4, 6);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(c);
    float same = 0, unmasked_diff = 0;
    for (size_t i = 0; i < a->size(); ++i) {
      same = std::max(same, std::fabs((*a)[i] - (*b)[i]));
      unmasked_diff = std::max(unmasked_diff, std::fabs((*a)[i] - (*c)[i]));
    }
    CHECK(same < 1e-5f);
    CHECK(unmasked_diff > 1e-4f);
    // A length outside widest kernel..len is refused.
    std::vector<int64_t> bad = {4, 7, 16};
    CHECK_FALSE(tight.train_step(padded(15), 3, 15, y, nullptr, &bad));
  }

  TEST_CASE("the learning rate can be set; a lower one moves the weights less") {
    auto moved = [](float lr) {
      textcnn_options o;
      o.vocab = 20;
      o.embed = 4;
      o.filters = 4;
      o.seed = 6;
      o.dropout = 0.0f;
      auto m = textcnn_classifier::create(o);
      REQUIRE(m);
      REQUIRE_FALSE(m->set_learning_rate(lr));
      CHECK(m->options().learning_rate == lr);
      std::mt19937 rng(4);
      auto t = random_tokens(rng, 8, 6, 20);
      std::vector<int32_t> y = {0, 1, 0, 1, 1, 0, 0, 1};
      auto before = m->predict(t, 8, 6);
      REQUIRE(m->train_step(t, 8, 6, y));
      auto after = m->predict(t, 8, 6);
      float d = 0;
      for (size_t i = 0; i < before->size(); ++i)
        d = std::max(d, std::fabs((*after)[i] - (*before)[i]));
      // Saved with the weights.
      std::map<std::string, std::string> meta;
      auto back = textcnn_classifier::load(*m->save({}), &meta);
      REQUIRE(back);
      CHECK(back->options().learning_rate == lr);
      return d;
    };
    // Adam's first step moves each weight by about the learning rate.
    CHECK(moved(1e-9f) < 1e-5f);
    CHECK(moved(1e-2f) > 1e-3f);
    textcnn_options o;
    auto m = textcnn_classifier::create(o);
    REQUIRE(m);
    for (float bad : {0.0f, -1e-3f, std::nanf("")}) {
      auto err = m->set_learning_rate(bad);
      REQUIRE(err);
      CHECK(is(err, errc::invalid_argument));
    }
    CHECK(m->options().learning_rate == o.learning_rate);
  }

  TEST_CASE("learning-rate drops on a plateau: back to the best epoch, rate lowered, then stop") {
    plateau_setup ps;
    auto make = [&] { return ps.make(); };
    auto& seqs = ps.seqs;
    auto& labels = ps.labels;
    auto& train = ps.train;
    auto& val = ps.val;
    auto run = [&](int drops, detector& d, std::function<caf::error(int)> on_plateau = {}) {
      auto o = ps.options(drops);
      o.on_plateau = std::move(on_plateau);
      auto r = train_model(d, seqs, labels, train, val, o);
      REQUIRE_MESSAGE(r, comb::test::why(r));
      return *r;
    };
    auto plain_d = make();
    auto plain = run(0, plain_d);
    CHECK(plain.lr_drops == 0);
    CHECK(plain.epochs_run == plain.best_epoch + 1);
    auto d = make();
    auto sched = run(2, d);
    REQUIRE(sched.epochs_run < 60); // stopped by the third plateau, not by the epoch limit
    CHECK(sched.lr_drops == 2);
    CHECK(sched.epochs_run > plain.epochs_run);
    // Epochs run at 1e-3, then 2.5e-4, then 6.25e-5; never back up.
    REQUIRE(sched.learning_rate.size() == static_cast<size_t>(sched.epochs_run));
    CHECK(sched.learning_rate.front() == doctest::Approx(1e-3));
    CHECK(sched.learning_rate.back() == doctest::Approx(6.25e-5));
    CHECK(std::is_sorted(sched.learning_rate.rbegin(), sched.learning_rate.rend()));
    // The kept weights are the best epoch's: their validation loss is the best one, and the
    // model keeps the rate it was created with.
    std::vector<std::vector<int32_t>> vs;
    for (auto i : val)
      vs.push_back(seqs[i]);
    auto p = d.score_encoded(vs);
    REQUIRE(p);
    double loss = 0;
    for (size_t k = 0; k < val.size(); ++k)
      loss -= std::log(std::max(labels[val[k]] == 1 ? (*p)[k] : 1.0 - (*p)[k], 1e-7));
    loss /= static_cast<double>(val.size());
    CHECK(loss == doctest::Approx(sched.best_validation_loss).epsilon(1e-4));
    CHECK(sched.best_validation_loss
          == doctest::Approx(
            *std::min_element(sched.validation_loss.begin(), sched.validation_loss.end())));
    CHECK(d.model().options().learning_rate == doctest::Approx(1e-3f));
    // At each plateau that lowers the rate the detector holds what a schedule of fewer drops
    // keeps: at the first the plain run's model, at the second the one-drop run's.
    auto scores = [&](detector& m) {
      auto q = m.score_encoded(vs);
      REQUIRE(q);
      return *q;
    };
    auto hooked_d = make();
    std::vector<int> seen;
    std::vector<std::vector<float>> at;
    auto hooked = run(2, hooked_d, [&](int before) -> caf::error {
      seen.push_back(before);
      at.push_back(scores(hooked_d));
      return {};
    });
    CHECK(hooked.epochs_run == sched.epochs_run);
    REQUIRE(seen == std::vector<int>{0, 1});
    auto one_d = make();
    auto one = run(1, one_d);
    CHECK(one.lr_drops == 1);
    for (auto [k, m] : {std::pair{0, &plain_d}, std::pair{1, &one_d}}) {
      auto want = scores(*m);
      for (size_t i = 0; i < want.size(); ++i)
        CHECK(at[static_cast<size_t>(k)][i] == doctest::Approx(want[i]).epsilon(1e-5));
    }
    CHECK(scores(hooked_d) == scores(d));
    // An error from the hook stops training, named.
    auto stopped_d = make();
    train_options so;
    so.max_epochs = 60;
    so.batch = 8;
    so.lr_drops = 2;
    so.on_plateau = [](int) { return make_error(errc::invalid_argument, "stop here"); };
    auto stopped = train_model(stopped_d, seqs, labels, train, val, so);
    REQUIRE_FALSE(stopped);
    CHECK(describe(stopped.error()).find("stop here") != std::string::npos);
    // Bad schedules are refused, named.
    train_options bad;
    bad.lr_drops = 1;
    bad.lr_decay = 1.5f;
    auto r = train_model(d, seqs, labels, train, val, bad);
    REQUIRE_FALSE(r);
    CHECK(is(r.error(), errc::invalid_argument));
    CHECK(describe(r.error()).find("decay") != std::string::npos);
  }

  TEST_CASE("patience after a drop: later plateaus wait that many epochs, the first does not") {
    plateau_setup ps;
    auto run = [&](train_options o) {
      auto d = ps.make();
      auto r = train_model(d, ps.seqs, ps.labels, ps.train, ps.val, o);
      REQUIRE_MESSAGE(r, comb::test::why(r));
      return *r;
    };
    auto same = run(ps.options(2));
    auto late = run(ps.options(2, /*patience=*/1, /*patience_after_drop=*/3));
    REQUIRE(same.epochs_run < 60);
    REQUIRE(late.epochs_run < 60); // every run at one rate ended on a plateau
    CHECK(same.lr_drops == 2);
    CHECK(late.lr_drops == 2);
    CHECK(epochs_without_better(same) == std::vector<int>{1, 1, 1});
    CHECK(epochs_without_better(late) == std::vector<int>{1, 3, 3});
    // Up to the first drop and the epoch after it the two runs are the same run.
    size_t at_first_rate = static_cast<size_t>(std::count(
      same.learning_rate.begin(), same.learning_rate.end(), same.learning_rate.front()));
    REQUIRE(at_first_rate + 1 < same.validation_loss.size());
    for (size_t e = 0; e <= at_first_rate; ++e)
      CHECK(late.validation_loss[e] == doctest::Approx(same.validation_loss[e]).epsilon(1e-6));
    // 0 = the same patience; the patience before the first drop still applies with it.
    auto zero = run(ps.options(2, /*patience=*/1, /*patience_after_drop=*/0));
    CHECK(zero.validation_loss == same.validation_loss);
    auto wide = run(ps.options(2, /*patience=*/2, /*patience_after_drop=*/1));
    CHECK(epochs_without_better(wide) == std::vector<int>{2, 1, 1});
    // Without drops it changes nothing: the first plateau stops.
    auto plain = run(ps.options(0, /*patience=*/1, /*patience_after_drop=*/3));
    CHECK(plain.lr_drops == 0);
    CHECK(epochs_without_better(plain) == std::vector<int>{1});
    // Bad values are refused, named.
    auto d = ps.make();
    auto bad = ps.options(2, /*patience=*/1, /*patience_after_drop=*/-1);
    auto r = train_model(d, ps.seqs, ps.labels, ps.train, ps.val, bad);
    REQUIRE_FALSE(r);
    CHECK(is(r.error(), errc::invalid_argument));
    CHECK(describe(r.error()).find("patience") != std::string::npos);
    bad = ps.options(2, /*patience=*/0);
    r = train_model(d, ps.seqs, ps.labels, ps.train, ps.val, bad);
    REQUIRE_FALSE(r);
    CHECK(is(r.error(), errc::invalid_argument));
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
    cfg.text.cookie = text_options::cookie_mode::drop;
    cfg.model.vocab = 300;
    cfg.model.embed = 8;
    cfg.model.filters = 6;
    // The sequence length is the model's: the detector reads it back.
    cfg.model.seq_len = 64;
    auto m = textcnn_classifier::create(cfg.model);
    REQUIRE(m);
    CHECK(m->seq_len() == 64);
    detector d{std::move(*tok), std::move(*m), cfg};
    CHECK(d.config().max_tokens == 64);
    CHECK(d.config().model.seq_len == 64);
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
    auto path =
      (std::filesystem::temp_directory_path() / "comb_anomaly_detector.safetensors").string();
    REQUIRE_FALSE(d.save(path));
    auto back = detector::load(path);
    REQUIRE_MESSAGE(back, comb::test::why(back));
    CHECK(back->config().max_tokens == 64);
    CHECK(back->model().seq_len() == 64);
    CHECK(back->config().text.cookie == text_options::cookie_mode::drop);
    // The sequence length is in the file once: the model's textcnn.seq_len.
    std::map<std::string, std::string> meta;
    REQUIRE(textcnn_classifier::load(*d.serialize(), &meta));
    CHECK(meta["textcnn.seq_len"] == "64");
    CHECK(meta["comb.config"].find("max_tokens") == std::string::npos);
    CHECK(back->tokenizer().merges() == d.tokenizer().merges());
    auto q = back->score_raw(reqs);
    REQUIRE(q);
    CHECK(*q == *p);
    // A stream of requests: each scored with its first line, text before the first request
    // line a unit of its own that is not HTTP.
    auto st = score_http_stream(*back, "junk\x01\nGET /index.jsp?id=1 HTTP/1.1\r\nHost: a\r\n"
                                       "\r\nPOST /login.jsp HTTP/1.1\r\nHost: a\r\n\r\nuser=bob");
    REQUIRE_MESSAGE(st, comb::test::why(st));
    REQUIRE(st->size() == 3);
    CHECK_FALSE((*st)[0].parsed);
    CHECK((*st)[0].first_line == "junk?");
    CHECK((*st)[1].parsed);
    CHECK((*st)[1].first_line == "GET /index.jsp?id=1 HTTP/1.1");
    CHECK((*st)[2].first_line == "POST /login.jsp HTTP/1.1");
    for (auto& r : *st)
      CHECK((r.probability >= 0.0f && r.probability <= 1.0f));
    auto none = score_http_stream(*back, " \n\n");
    REQUIRE(none);
    CHECK(none->empty());
    std::filesystem::remove(path);
    auto missing = detector::load(path);
    REQUIRE_FALSE(missing);
    CHECK(describe(missing.error()).find(path) != std::string::npos);
  }

  TEST_CASE("a max_tokens the model cannot take is clamped to its widest kernel") {
    detector_config cfg;
    cfg.max_tokens = 2;
    cfg.model.vocab = 300;
    cfg.model.embed = 4;
    cfg.model.filters = 3;
    auto m = textcnn_classifier::create(cfg.model);
    REQUIRE(m);
    CHECK(m->seq_len() == textcnn_classifier::default_seq_len);
    std::vector<std::string_view> corpus = {"GET /a HTTP/1.1"};
    detector d{*bbpe_tokenizer::train(corpus, 300), std::move(*m), cfg};
    CHECK(d.config().max_tokens == 4);
    CHECK(d.model().seq_len() == 4);
  }

  namespace {

  /// A safetensors file of `m`'s weights with exactly `meta` in the header, as Comb wrote them
  /// before one TextCNN.
  std::string file_of(const kernels::textcnn& m, const std::map<std::string, std::string>& meta) {
    std::vector<std::pair<std::string, const kernels::tensor*>> list;
    for (auto& [name, t] : m.parameters())
      list.emplace_back(name, t);
    auto bytes = kernels::encode_safetensors(list, meta);
    REQUIRE(bytes);
    return *bytes;
  }

  } // namespace

  TEST_CASE("files written before one TextCNN keep loading") {
    kernels::textcnn_config kc;
    kc.vocab = 300, kc.embed = 8, kc.filters = 6, kc.seq_len = 256, kc.seed = 5;
    auto km = kernels::textcnn::create(kc);
    REQUIRE(km);
    std::mt19937 rng(4);
    auto tokens = random_tokens(rng, 5, 20, 300);
    auto expected = km->predict(tokens, 5);
    REQUIRE(expected);
    std::vector<std::string> texts = {"GET /index.jsp?id=1 HTTP/1.1 Host: a",
                                      "POST /login.jsp HTTP/1.1 Host: a user=bob"};
    std::vector<std::string_view> views(texts.begin(), texts.end());
    auto tok = bbpe_tokenizer::train(views, 300);
    REQUIRE(tok);
    // The fused engine's own writer: its textcnn.* keys, no engine, classes or seq_len.
    std::map<std::string, std::string> fused_meta = {{"textcnn.vocab", "300"},
                                                     {"textcnn.embed", "8"},
                                                     {"textcnn.filters", "6"},
                                                     {"textcnn.kernel_sizes", "2,3,4"},
                                                     {"textcnn.dropout", "0.200000"},
                                                     {"textcnn.learning_rate", "0.002000"},
                                                     {"textcnn.seed", "5"}};
    auto check_scores = [&](textcnn_classifier& c) {
      auto p = c.predict(tokens, 5, 20);
      REQUIRE(p);
      for (size_t b = 0; b < 5; ++b)
        CHECK((*p)[b] == doctest::Approx((*expected)[2 * b + 1]).epsilon(1e-5));
    };
    SUBCASE("a bare fused model gets the default sequence length") {
      auto c = textcnn_classifier::load(file_of(*km, fused_meta), nullptr);
      REQUIRE_MESSAGE(c, comb::test::why(c));
      CHECK(c->options().engine == "fused");
      CHECK(c->options().learning_rate == doctest::Approx(0.002));
      CHECK(c->options().kernel_sizes == std::vector<int>{2, 3, 4});
      CHECK(c->seq_len() == textcnn_classifier::default_seq_len);
      check_scores(*c);
    }
    SUBCASE("a fused detector: its max_tokens is the sequence length") {
      auto meta = fused_meta;
      meta["comb.kind"] = "anomaly-detector";
      meta["comb.format"] = "1";
      meta["comb.tokenizer"] = tok->serialize();
      meta["comb.config"] = "vocab_size=300\nmax_tokens=64\ntext.cookie=drop\n"
                            "text.sort_headers=1\ntext.drop_headers=0\nmodel.vocab=300\n"
                            "model.embed=8\nmodel.filters=6\nmodel.kernel_sizes=2,3,4\n"
                            "model.dropout=0.2\nmodel.learning_rate=0.002\nmodel.seed=5\n"
                            "model.engine=fused\n";
      auto d = detector::deserialize(file_of(*km, meta));
      REQUIRE_MESSAGE(d, comb::test::why(d));
      CHECK(d->config().max_tokens == 64);
      CHECK(d->model().seq_len() == 64);
      CHECK(d->config().text.cookie == text_options::cookie_mode::drop);
      CHECK(d->encode_text(std::string(1000, 'x')).size() == 64);
      check_scores(d->model());
      // Written again, it holds the value once, in the model's metadata.
      auto again = detector::deserialize(*d->serialize());
      REQUIRE(again);
      CHECK(again->config().max_tokens == 64);
    }
    SUBCASE("a kernels detector: max_tokens wins over the unused textcnn.seq_len") {
      auto bytes = km->to_bytes({{"anomaly.engine", "kernels"},
                                 {"anomaly.learning_rate", "0.005000"},
                                 {"comb.kind", "anomaly-detector"},
                                 {"comb.tokenizer", tok->serialize()},
                                 {"comb.config", "vocab_size=300\nmax_tokens=100\n"
                                                 "model.engine=kernels\n"}});
      REQUIRE(bytes);
      // Files of that time had no textcnn.learning_rate.
      auto file = kernels::decode_safetensors(*bytes);
      REQUIRE(file);
      file->metadata.erase("textcnn.learning_rate");
      CHECK(file->metadata.at("textcnn.seq_len") == "256");
      auto d = detector::deserialize(file_of(*km, file->metadata));
      REQUIRE_MESSAGE(d, comb::test::why(d));
      CHECK(d->config().max_tokens == 100);
      CHECK(d->model().seq_len() == 100);
      CHECK(d->model().options().engine == "kernels");
      CHECK(d->model().options().learning_rate == doctest::Approx(0.005));
      check_scores(d->model());
    }
  }

} // TEST_SUITE
