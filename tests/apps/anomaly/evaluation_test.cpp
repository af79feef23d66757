// End-to-end test on a small CSIC 2010 subset: tokenizer on the training part, TextCNN with
// early stopping, scoring of held-out requests; and the ablation perturbations.
#include "apps/anomaly/evaluation.hpp"

#include "base/errc.hpp"
#include "tests/apps/anomaly/test_data.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace comb;
using namespace comb::anomaly;

TEST_SUITE("apps.anomaly.evaluation") {

TEST_CASE("perturbations change what they say and nothing else") {
  auto r = parse_http_request("GET /a HTTP/1.1\r\nA: 1\r\nCookie: JSESSIONID=AB\r\nB: 2\r\n"
                              "C: 3\r\nD: 4\r\n\r\n");
  REQUIRE(r);
  auto c = perturb_request(*r, test_perturbation::random_cookies, 1);
  CHECK(c.headers[1].second.starts_with("JSESSIONID="));
  CHECK(c.headers[1].second != "JSESSIONID=AB");
  CHECK(c.headers[0] == r->headers[0]);
  auto s = perturb_request(*r, test_perturbation::shuffle_headers, 3);
  CHECK(s.headers.size() == r->headers.size());
  CHECK(std::is_permutation(s.headers.begin(), s.headers.end(), r->headers.begin()));
  CHECK(s.url == r->url);
}

TEST_CASE("a small CSIC subset: the detector learns, protocol 1") {
  if (!test::have_csic()) {
    MESSAGE("CSIC 2010 not found at " << test::csic_dir() << ": skipped");
    return;
  }
  auto ds = load_csic(test::csic_dir(), 400);
  REQUIRE(ds);
  std::vector<int> labels;
  for (auto& r : ds->requests)
    labels.push_back(r.label);
  auto sp = stratified_share(labels, 0.7, 1);
  REQUIRE(sp);
  eval_options o;
  o.config.vocab_size = 2048;
  // Short inputs: with 840 training requests and 300 steps, 256 tokens learn faster (the
  // default of 512 pays off on the full data set).
  o.config.max_tokens = 256;
  o.train.max_epochs = 6;
  o.train.patience = 3;
  o.train.min_steps = 300;
  auto r = run_experiment(*ds, *sp, tokenizer_protocol::training_part, o);
  REQUIRE_MESSAGE(r, describe(r.error()));
  MESSAGE("subset of " << ds->requests.size() << ": " << r->metrics.to_string() << ", "
                       << r->training.epochs_run << " epochs");
  CHECK(r->metrics.total() == sp->test.size());
  // Far above chance (anomalous share 1/3): the model learned something real.
  CHECK(r->metrics.f1() > 0.7);
  CHECK(r->metrics.accuracy() > 0.85);
}

} // TEST_SUITE
