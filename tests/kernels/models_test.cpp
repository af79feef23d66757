// kernels.models: the MLP and the TextCNN train on toy sets to near-zero loss, the same
// seed gives bit-identical losses, whole-model gradients match finite differences, weights
// round-trip through safetensors, and corrupt or mismatched files and bad batches get
// clear errors.
#include "kernels/models/mlp.hpp"
#include "kernels/models/textcnn.hpp"
#include "kernels/safetensors.hpp"

#include "tests/kernels/kernel_check.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace comb::kernels;
using namespace comb::kernels::test;

namespace {

/// 32 random points in 8 dimensions, 3 classes.
std::pair<tensor, tensor> toy_points() {
  std::mt19937_64 rng(7);
  auto x = random_f32({32, 8}, rng);
  auto y = random_i32({32}, rng, 3);
  return {x, y};
}

/// Sequences of 12 tokens over a vocabulary of 20; class 1 when the pair (7, 8) occurs.
std::pair<std::vector<int32_t>, std::vector<int32_t>> toy_sequences() {
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<int32_t> tok(0, 19), pos(0, 10);
  std::vector<int32_t> tokens, labels;
  for (int i = 0; i < 24; ++i) {
    std::vector<int32_t> s(12);
    for (auto& t : s)
      t = tok(rng) == 7 ? 6 : tok(rng);
    for (size_t j = 0; j + 1 < s.size(); ++j)
      if (s[j] == 7 && s[j + 1] == 8)
        s[j + 1] = 9;
    int label = i % 2;
    if (label) {
      auto p = static_cast<size_t>(pos(rng));
      s[p] = 7, s[p + 1] = 8;
    }
    tokens.insert(tokens.end(), s.begin(), s.end());
    labels.push_back(label);
  }
  return {tokens, labels};
}

textcnn_config tiny_textcnn(float dropout) {
  textcnn_config c;
  c.vocab = 20, c.embed = 8, c.seq_len = 12, c.filters = 6, c.classes = 2;
  c.dropout = dropout, c.seed = 3;
  c.adam.lr = 1e-2f;
  return c;
}

double mean_nll(const std::vector<float>& probs, const std::vector<int32_t>& labels, int c) {
  double s = 0;
  for (size_t i = 0; i < labels.size(); ++i)
    s -= std::log(
      std::max(1e-30f, probs[i * static_cast<size_t>(c) + static_cast<size_t>(labels[i])]));
  return s / static_cast<double>(labels.size());
}

/// Finite differences on sampled parameters of a model's loss.
template <class LossFn>
void model_grad_check(const std::string& name, std::vector<std::pair<std::string, tensor*>> params,
                      std::vector<std::pair<std::string, tensor*>> grads, LossFn&& loss) {
  REQUIRE(loss());
  std::vector<tensor> analytic;
  for (auto& [n, g] : grads)
    analytic.push_back(*g->clone());
  std::mt19937_64 rng(1);
  int bad = 0;
  for (size_t j = 0; j < params.size(); ++j) {
    auto* p = params[j].second;
    std::uniform_int_distribution<int64_t> pick(0, p->numel() - 1);
    for (int s = 0; s < 6; ++s) {
      auto i = pick(rng);
      float keep = p->data<float>()[i];
      const float h = 1e-2f;
      p->data<float>()[i] = keep + h;
      double up = *loss();
      p->data<float>()[i] = keep - h;
      double down = *loss();
      p->data<float>()[i] = keep;
      double num = (up - down) / (2 * h);
      double ana = analytic[j].data<float>()[i];
      if (std::fabs(num - ana) > 2e-3 + 2e-2 * std::fabs(ana) && bad++ < 5)
        MESSAGE(name << " " << params[j].first << "[" << i << "]: analytic " << ana << ", numeric "
                     << num);
    }
  }
  CHECK_MESSAGE(bad == 0, name);
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path()
          / ("comb_kernels_" + std::to_string(::getpid()) + "_" + name))
    .string();
}

} // namespace

TEST_SUITE("kernels.models") {
  TEST_CASE("MLP 784-512-10 shapes, and a tiny MLP trains to near-zero loss deterministically") {
    auto big = mlp::create({});
    REQUIRE(big);
    std::mt19937_64 rng(1);
    auto probs = big->forward(random_f32({3, 784}, rng));
    REQUIRE(probs);
    CHECK(probs->shape() == shape{3, 10});
    double row = 0;
    for (int j = 0; j < 10; ++j)
      row += probs->data<float>()[j];
    CHECK(row == doctest::Approx(1.0).epsilon(1e-5));

    auto [x, y] = toy_points();
    mlp_config cfg;
    cfg.sizes = {8, 32, 3};
    cfg.seed = 5;
    cfg.adam.lr = 1e-2f;
    auto a = mlp::create(cfg), b = mlp::create(cfg);
    REQUIRE(a);
    REQUIRE(b);
    float first = 0, last = 0;
    for (int step = 0; step < 300; ++step) {
      auto la = a->train_step(x, y);
      auto lb = b->train_step(x, y);
      REQUIRE(la);
      REQUIRE(lb);
      REQUIRE(*la == *lb); // same seed, same data: bit-identical
      if (step == 0)
        first = *la;
      last = *la;
    }
    MESSAGE("tiny MLP loss " << first << " -> " << last);
    CHECK(first > 0.5f);
    CHECK(last < 0.02f);
  }

  TEST_CASE("MLP gradients match finite differences") {
    auto [x, y] = toy_points();
    mlp_config cfg;
    cfg.sizes = {8, 12, 3};
    auto m = mlp::create(cfg);
    REQUIRE(m);
    model_grad_check("mlp", m->parameters(), m->gradients(),
                     [&] { return m->loss_and_gradients(x, y); });
  }

  TEST_CASE("TextCNN gradients match finite differences") {
    auto [tokens, labels] = toy_sequences();
    auto m = textcnn::create(tiny_textcnn(0));
    REQUIRE(m);
    auto t = *tensor::from({24, 12}, tokens);
    auto l = *tensor::from({24}, labels);
    model_grad_check("textcnn", m->parameters(), m->gradients(),
                     [&] { return m->loss_and_gradients(t, l, /*train=*/false); });
  }

  TEST_CASE("a tiny TextCNN trains to near-zero loss; same seed, identical losses") {
    auto [tokens, labels] = toy_sequences();
    auto a = textcnn::create(tiny_textcnn(0.2f));
    auto b = textcnn::create(tiny_textcnn(0.2f));
    REQUIRE(a);
    REQUIRE(b);
    auto before = a->predict(tokens, 24);
    REQUIRE(before);
    double start = mean_nll(*before, labels, 2);
    for (int step = 0; step < 150; ++step) {
      auto la = a->train_step(tokens, labels);
      auto lb = b->train_step(tokens, labels);
      REQUIRE(la);
      REQUIRE(lb);
      REQUIRE(*la == *lb);
    }
    auto after = a->predict(tokens, 24);
    REQUIRE(after);
    double end = mean_nll(*after, labels, 2);
    MESSAGE("tiny TextCNN loss " << start << " -> " << end);
    CHECK(start > 0.3);
    CHECK(end < 0.02);
    CHECK(a->steps() == 150);
    // Another seed starts elsewhere.
    auto cfg = tiny_textcnn(0.2f);
    cfg.seed = 4;
    auto c = textcnn::create(cfg);
    REQUIRE(c);
    CHECK(*c->train_step(tokens, labels)
          != *textcnn::create(tiny_textcnn(0.2f))->train_step(tokens, labels));
  }

  TEST_CASE("paper-sized TextCNN: 64 x 256 tokens, embedding 64, 3 x 100 filters") {
    textcnn_config cfg; // defaults: vocab 8192, embed 64, 2/3/4 x 100, dropout 0.2
    auto m = textcnn::create(cfg);
    REQUIRE(m);
    std::mt19937_64 rng(2);
    auto tokens = random_i32({64, 256}, rng, 8192);
    auto labels = random_i32({64}, rng, 2);
    auto loss = m->train_step(tokens, labels);
    REQUIRE(loss);
    CHECK(*loss > 0.3f);
    CHECK(*loss < 1.5f);
    auto p = m->forward(tokens);
    REQUIRE(p);
    CHECK(p->shape() == shape{64, 2});
    CHECK(m->parameters().size() == 9);
  }

  TEST_CASE("TextCNN weights round-trip through safetensors") {
    auto [tokens, labels] = toy_sequences();
    auto a = textcnn::create(tiny_textcnn(0.2f));
    REQUIRE(a);
    for (int i = 0; i < 5; ++i)
      REQUIRE(a->train_step(tokens, labels));
    auto path = temp_path("textcnn.safetensors");
    REQUIRE(!a->save(path, {{"dataset", "toy"}}));
    std::map<std::string, std::string> meta;
    auto b = textcnn::load(path, nullptr, &meta);
    REQUIRE(b);
    CHECK(meta.at("dataset") == "toy");
    CHECK(meta.at("textcnn.kernel_sizes") == "2,3,4");
    CHECK(*a->predict(tokens, 24) == *b->predict(tokens, 24));
    auto bytes = a->to_bytes();
    REQUIRE(bytes);
    auto c = textcnn::from_bytes(*bytes);
    REQUIRE(c);
    CHECK(*a->predict(tokens, 24) == *c->predict(tokens, 24));
    auto d = textcnn::create(tiny_textcnn(0.2f));
    REQUIRE(!d->copy_weights_from(*a));
    CHECK(*a->predict(tokens, 24) == *d->predict(tokens, 24));
    std::filesystem::remove(path);
  }

  TEST_CASE("corrupt and mismatched safetensors files get clear errors") {
    auto a = textcnn::create(tiny_textcnn(0));
    REQUIRE(a);
    auto bytes = *a->to_bytes();
    auto fails_with = [](std::string_view b, const std::string& needle) {
      auto r = textcnn::from_bytes(b);
      REQUIRE(!r);
      auto msg = comb::describe(r.error());
      CHECK_MESSAGE(msg.find(needle) != std::string::npos, msg);
    };
    fails_with(std::string_view{bytes}.substr(0, 5), "too short");
    fails_with(std::string_view{bytes}.substr(0, bytes.size() - 4), "outside");
    auto huge = bytes;
    huge[7] = 0x7f;
    fails_with(huge, "header length");
    auto garbled = bytes;
    garbled[9] = '#';
    fails_with(garbled, "not valid JSON");
    // A bad byte late in the header: one short line naming it, not the header quoted whole
    // (nlohmann's "last read: '...'" put kilobytes of it on the error line).
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
      n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
    auto late = bytes;
    late[8 + n - 2] = '\x93';
    auto late_r = textcnn::from_bytes(late);
    REQUIRE(!late_r);
    auto late_msg = comb::describe(late_r.error());
    CHECK_MESSAGE(late_msg.find("parse error at header byte") != std::string::npos, late_msg);
    CHECK_MESSAGE(late_msg.size() < 200, late_msg);
    auto f16 = bytes;
    auto pos = f16.find("\"F32\"");
    REQUIRE(pos != std::string::npos);
    f16.replace(pos, 5, "\"F16\"");
    fails_with(f16, "dtype F16");
    // A model of another shape: the file's tensors do not fit.
    auto meta_pos = bytes.find("\"textcnn.filters\":\"6\"");
    REQUIRE(meta_pos != std::string::npos);
    auto other = bytes;
    other.replace(meta_pos, 21, "\"textcnn.filters\":\"7\"");
    fails_with(other, "the model expects");
    auto r = textcnn::load("/nonexistent/dir/model.safetensors");
    REQUIRE(!r);
    CHECK(comb::is(r.error(), comb::errc::not_found));
    // Generic decode: round trip of all dtypes.
    auto f = *tensor::from({2, 2}, std::vector<float>{1, 2, 3, 4});
    auto i = *tensor::from({3}, std::vector<int32_t>{-1, 0, 7});
    auto u = tensor::zeros({5}, dtype::u8);
    u.data<uint8_t>()[4] = 200;
    auto enc = encode_safetensors({{"f", &f}, {"i", &i}, {"u", &u}}, {{"k", "v"}});
    REQUIRE(enc);
    auto dec = decode_safetensors(*enc);
    REQUIRE(dec);
    CHECK(mismatches("f", f, dec->tensors.at("f")) == 0);
    CHECK(mismatches("i", i, dec->tensors.at("i")) == 0);
    CHECK(mismatches("u", u, dec->tensors.at("u")) == 0);
    CHECK(dec->metadata.at("k") == "v");
    CHECK(!encode_safetensors({{"f", &f}, {"f", &f}}));
    // No tensors and no metadata: a file the decoder reads back (found by fuzz_safetensors,
    // whose input is in tests/fuzz/corpus/fuzz_safetensors/empty_header_crash).
    auto none = encode_safetensors({});
    REQUIRE(none);
    auto back = decode_safetensors(*none);
    REQUIRE_MESSAGE(back, comb::describe(back.error()));
    CHECK(back->tensors.empty());
    CHECK(back->metadata.empty());
  }

  TEST_CASE("the TextCNN file holds its sequence length and learning rate; weights are finite") {
    auto cfg = tiny_textcnn(0);
    cfg.adam.lr = 3.5e-7f;
    auto a = textcnn::create(cfg);
    REQUIRE(a);
    CHECK(a->config().seq_len == 12);
    CHECK(!a->set_seq_len(40));
    CHECK(a->config().seq_len == 40);
    CHECK(static_cast<bool>(a->set_seq_len(3))); // shorter than the widest kernel (4)
    CHECK(static_cast<bool>(a->set_seq_len(int64_t{1} << 21)));
    CHECK(a->config().seq_len == 40);
    auto b = textcnn::from_bytes(*a->to_bytes());
    REQUIRE(b);
    CHECK(b->config().seq_len == 40);
    CHECK(b->config().adam.lr == a->config().adam.lr);
    // Files before the learning rate was saved: Adam's default.
    auto file = decode_safetensors(*a->to_bytes());
    REQUIRE(file);
    file->metadata.erase("textcnn.learning_rate");
    auto c = textcnn::from_safetensors(*file);
    REQUIRE(c);
    CHECK(c->config().adam.lr == adam_params{}.lr);
    // A non-finite weight is refused, by name.
    file->tensors.at("dense.bias").data<float>()[1] = std::nanf("");
    auto d = textcnn::from_safetensors(*file);
    REQUIRE(!d);
    CHECK(comb::describe(d.error()).find("dense.bias") != std::string::npos);
    // Weight changes show in weights_version().
    auto v = a->weights_version();
    CHECK(b->weights_version() != v);
    auto [tokens, labels] = toy_sequences();
    REQUIRE(a->train_step(tokens, labels));
    CHECK(a->weights_version() != v);
    v = a->weights_version();
    REQUIRE(!a->copy_weights_from(*b));
    CHECK(a->weights_version() != v);
  }

  TEST_CASE("bad batches and configs get clear errors") {
    auto m = textcnn::create(tiny_textcnn(0));
    REQUIRE(m);
    auto out_of_vocab = m->predict(std::vector<int32_t>(12, 25), 1);
    REQUIRE(!out_of_vocab);
    CHECK(comb::describe(out_of_vocab.error()).find("token 25") != std::string::npos);
    auto too_short = m->predict(std::vector<int32_t>{1, 2, 3}, 1);
    REQUIRE(!too_short);
    CHECK(comb::describe(too_short.error()).find("shorter than kernel") != std::string::npos);
    auto ragged = m->predict(std::vector<int32_t>(13, 1), 2);
    CHECK(!ragged);
    auto bad_label = m->train_step(std::vector<int32_t>(12, 1), std::vector<int32_t>{5});
    REQUIRE(!bad_label);
    CHECK(comb::describe(bad_label.error()).find("label 5") != std::string::npos);
    auto cfg = tiny_textcnn(0);
    cfg.kernel_sizes = {2, 2};
    CHECK(!textcnn::create(cfg));
    cfg = tiny_textcnn(1.5f);
    CHECK(!textcnn::create(cfg));
    mlp_config mc;
    mc.sizes = {4};
    CHECK(!mlp::create(mc));
    auto net = mlp::create({});
    auto wrong = net->forward(tensor::zeros({2, 100}));
    REQUIRE(!wrong);
    CHECK(comb::describe(wrong.error()).find("do not fit") != std::string::npos);
  }

} // TEST_SUITE
