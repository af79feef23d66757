// Tests of comb::anomaly::bbpe_tokenizer: lossless encoding, no unknown tokens, agreement
// with a naive apply-merges-in-order reference, serialization, bad input.
#include "apps/anomaly/bbpe_tokenizer.hpp"

#include "apps/anomaly/csic_dataset.hpp"
#include "base/errc.hpp"
#include "tests/apps/anomaly/test_data.hpp"

#include <doctest/doctest.h>

#include <random>

using namespace comb;
using namespace comb::anomaly;

namespace {

/// Reference: encode each chunk by applying every merge in learned order, left to right.
std::vector<int32_t> naive_encode(const bbpe_tokenizer& tok, std::string_view text) {
  std::vector<int32_t> out;
  bbpe_tokenizer::chunk(text, [&](std::string_view c) {
    std::vector<int32_t> s;
    for (unsigned char b : c)
      s.push_back(b + 1);
    int32_t id = bbpe_tokenizer::base_vocab;
    for (auto [l, r] : tok.merges()) {
      std::vector<int32_t> t;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == l && s[i + 1] == r) {
          t.push_back(id);
          i += 2;
        } else {
          t.push_back(s[i++]);
        }
      }
      s.swap(t);
      ++id;
    }
    out.insert(out.end(), s.begin(), s.end());
  });
  return out;
}

std::vector<std::string> sample_corpus() {
  std::vector<std::string> c;
  std::mt19937 rng(7);
  const char* words[] = {"GET",
                         "POST",
                         "http://localhost:8080/tienda1/",
                         "index.jsp",
                         "?id=",
                         "&nombre=",
                         "Jam%F3n+Ib%E9rico",
                         "%27%3B+DROP+TABLE",
                         "Host: localhost",
                         "User-Agent: Mozilla/5.0",
                         " ",
                         "=",
                         "&"};
  for (int i = 0; i < 300; ++i) {
    std::string s;
    int n = 5 + static_cast<int>(rng() % 20);
    for (int k = 0; k < n; ++k)
      s += words[rng() % std::size(words)];
    c.push_back(s);
  }
  return c;
}

} // namespace

TEST_SUITE("apps.anomaly.bbpe") {
  TEST_CASE("an untrained tokenizer maps each byte to one token") {
    bbpe_tokenizer tok;
    CHECK(tok.vocab_size() == 257);
    std::string all;
    for (int b = 0; b < 256; ++b)
      all += static_cast<char>(b);
    auto ids = tok.encode(all);
    REQUIRE(ids.size() == 256);
    for (int b = 0; b < 256; ++b)
      CHECK(ids[b] == b + 1);
    auto back = tok.decode(ids);
    REQUIRE(back);
    CHECK(*back == all);
  }

  TEST_CASE("training reaches the vocabulary size, is deterministic and compresses") {
    auto corpus = sample_corpus();
    std::vector<std::string_view> views(corpus.begin(), corpus.end());
    auto a = bbpe_tokenizer::train(views, 400);
    auto b = bbpe_tokenizer::train(views, 400);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->vocab_size() <= 400);
    CHECK(a->vocab_size() > 300);
    CHECK(a->merges() == b->merges());
    size_t bytes = 0, tokens = 0;
    for (auto& s : corpus) {
      auto ids = a->encode(s);
      bytes += s.size();
      tokens += ids.size();
      auto back = a->decode(ids);
      REQUIRE(back);
      CHECK(*back == s);
      CHECK(ids == naive_encode(*a, s));
    }
    CHECK(tokens * 3 < bytes);
  }

  TEST_CASE("random bytes encode losslessly, never to padding, and agree with the reference") {
    auto corpus = sample_corpus();
    std::vector<std::string_view> views(corpus.begin(), corpus.end());
    auto tok = bbpe_tokenizer::train(views, 600);
    REQUIRE(tok);
    std::mt19937 rng(11);
    for (int i = 0; i < 300; ++i) {
      std::string s(rng() % 200, '\0');
      for (auto& ch : s)
        ch = static_cast<char>(i % 2 ? rng() % 256 : " %27AB=&/"[rng() % 9]);
      auto ids = tok->encode(s);
      for (auto id : ids) {
        CHECK(id > 0);
        CHECK(static_cast<size_t>(id) < tok->vocab_size());
      }
      auto back = tok->decode(ids);
      REQUIRE(back);
      CHECK(*back == s);
      CHECK(ids == naive_encode(*tok, s));
    }
  }

  TEST_CASE("max_tokens truncates; empty input gives no tokens") {
    bbpe_tokenizer tok;
    CHECK(tok.encode("").empty());
    std::string big(100000, 'A');
    auto ids = tok.encode(big, 256);
    CHECK(ids.size() == 256);
  }

  TEST_CASE("serialization round-trips and bad text is rejected with the line") {
    auto corpus = sample_corpus();
    std::vector<std::string_view> views(corpus.begin(), corpus.end());
    auto tok = bbpe_tokenizer::train(views, 350);
    REQUIRE(tok);
    auto text = tok->serialize();
    auto back = bbpe_tokenizer::deserialize(text);
    REQUIRE(back);
    CHECK(back->merges() == tok->merges());
    CHECK(back->encode(corpus[0]) == tok->encode(corpus[0]));

    auto e1 = bbpe_tokenizer::deserialize("");
    REQUIRE_FALSE(e1);
    CHECK(is(e1.error(), errc::bad_model));
    auto e2 = bbpe_tokenizer::deserialize("comb-bbpe 1 2\n1 2\n");
    REQUIRE_FALSE(e2);
    CHECK(describe(e2.error()).find("line 3") != std::string::npos);
    auto e3 = bbpe_tokenizer::deserialize("comb-bbpe 1 1\n1 999\n");
    REQUIRE_FALSE(e3);
    CHECK(describe(e3.error()).find("outside") != std::string::npos);
    auto e4 = bbpe_tokenizer::deserialize("comb-bbpe 1 1\nx y\n");
    REQUIRE_FALSE(e4);
    auto e5 = bbpe_tokenizer::deserialize("comb-bbpe 1 2\n1 2\n1 2\n");
    REQUIRE_FALSE(e5);
    CHECK(describe(e5.error()).find("repeats") != std::string::npos);
    CHECK_FALSE(bbpe_tokenizer::train(views, 10));
    bbpe_tokenizer empty;
    CHECK_FALSE(empty.decode({0}));
    CHECK_FALSE(empty.decode({257}));
  }

  TEST_CASE("a CSIC subset trains and encodes losslessly") {
    if (!test::have_csic()) {
      MESSAGE("CSIC 2010 not found at " << test::csic_dir() << ": skipped");
      return;
    }
    auto ds = load_csic(test::csic_dir(), 400);
    REQUIRE(ds);
    // The paper's text, digits and letters as they are: the most varied bytes to encode.
    text_options raw;
    raw.zero_digits = false;
    raw.fold_value_letters = false;
    std::vector<std::string> texts;
    for (auto& r : ds->requests)
      texts.push_back(to_model_text(r.request, raw));
    std::vector<std::string_view> views(texts.begin(), texts.end());
    auto tok = bbpe_tokenizer::train(views, 2000);
    REQUIRE(tok);
    CHECK(tok->vocab_size() > 1000);
    for (size_t i = 0; i < texts.size(); i += 7) {
      auto ids = tok->encode(texts[i]);
      auto back = tok->decode(ids);
      REQUIRE(back);
      CHECK(*back == texts[i]);
      CHECK(ids == naive_encode(*tok, texts[i]));
    }
  }

} // TEST_SUITE
