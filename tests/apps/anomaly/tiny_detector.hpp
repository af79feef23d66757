// A small anomaly detector with random weights for the serving tests: a BBPE tokenizer trained
// on a few requests and a narrow TextCNN drawn from a seed (scores are not meaningful, but
// they are a fixed function of the request, which is what serving must preserve). Header only.
#pragma once

#include "apps/anomaly/detector.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace comb::anomaly::tiny {

/// Requests of many token lengths, HTTP and not.
inline std::vector<std::string> sample_requests() {
  std::vector<std::string> r = {
    "GET /index.jsp HTTP/1.1\r\nHost: shop\r\n\r\n",
    "GET /index.jsp?id=1 HTTP/1.1\r\nHost: shop\r\n\r\n",
    "POST /login.jsp HTTP/1.1\r\nHost: shop\r\nContent-Length: 17\r\n\r\nuser=bob&pw=alice",
    "GET /search.jsp?q=%27%20OR%201%3D1-- HTTP/1.1\r\nHost: shop\r\nCookie: JSESSIONID=ab\r\n\r\n",
    "\x01\x02 binary garbage",
    "",
    "x",
  };
  std::string long_req = "GET /tienda1/publico/anadir.jsp?";
  for (int i = 0; i < 40; ++i)
    long_req += "p" + std::to_string(i) + "=" + std::string(static_cast<size_t>(i % 7 + 1), 'a')
                + "&";
  r.push_back(long_req + " HTTP/1.1\r\nHost: shop\r\n\r\n");
  return r;
}

/// A detector with random weights (seed `seed`), sequence length 96, scoring with `engine`
/// ("fused", or "kernels" on the CPU).
inline detector tiny_detector(uint64_t seed = 7, const std::string& engine = "fused") {
  auto corpus = sample_requests();
  std::vector<std::string_view> views(corpus.begin(), corpus.end());
  auto tok = bbpe_tokenizer::train(views, 320);
  REQUIRE(tok);
  detector_config cfg;
  cfg.vocab_size = 320;
  cfg.model.vocab = 320;
  cfg.model.embed = 8;
  cfg.model.filters = 6;
  cfg.model.seq_len = 96;
  cfg.model.seed = seed;
  cfg.model.engine = engine;
  cfg.model.prefer_gpu = false;
  auto m = textcnn_classifier::create(cfg.model);
  REQUIRE(m);
  return detector{std::move(*tok), std::move(*m), cfg};
}

} // namespace comb::anomaly::tiny
