// End-to-end test on a small CSIC 2010 subset: tokenizer on the training part, TextCNN with
// early stopping, scoring of held-out requests; and the ablation perturbations.
#include "apps/anomaly/evaluation.hpp"

#include "base/errc.hpp"
#include "tests/apps/anomaly/test_data.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

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
    REQUIRE_MESSAGE(r, comb::test::why(r));
    MESSAGE("subset of " << ds->requests.size() << ": " << r->metrics.to_string() << ", "
                         << r->training.epochs_run << " epochs");
    CHECK(r->metrics.total() == sp->test.size());
    // Far above chance (anomalous share 1/3): the model learned something real.
    CHECK(r->metrics.f1() > 0.7);
    CHECK(r->metrics.accuracy() > 0.85);
  }

  TEST_CASE("the share sweep and the ablations: one row each, a bad share refused") {
    if (!test::have_csic()) {
      MESSAGE("CSIC 2010 not found at " << test::csic_dir() << ": skipped");
      return;
    }
    auto ds = load_csic(test::csic_dir(), 60);
    REQUIRE(ds);
    eval_options o;
    o.config.vocab_size = 300;
    o.config.model.embed = 8;
    o.config.model.filters = 4;
    o.config.model.seq_len = 64;
    o.train.max_epochs = 1;
    size_t seen = 0;
    auto rows = run_share_sweep(*ds, {0.5, 0.2}, tokenizer_protocol::all_data, o,
                                [&](const share_result&) { ++seen; });
    REQUIRE_MESSAGE(rows, comb::test::why(rows));
    REQUIRE(rows->size() == 2);
    CHECK(seen == 2);
    CHECK((*rows)[1].share == 0.2);
    CHECK((*rows)[1].result.train_size + (*rows)[1].result.test_size == ds->requests.size());
    auto bad = run_share_sweep(*ds, {1.5}, tokenizer_protocol::all_data, o);
    CHECK_FALSE(bad);
    // One later fold alone (folds in separate processes): the same test part as that fold's.
    std::vector<int> labels;
    for (auto& r : ds->requests)
      labels.push_back(r.label);
    auto folds = stratified_kfold(labels, 3, o.seed);
    REQUIRE(folds);
    auto second = run_kfold(*ds, 3, tokenizer_protocol::training_part, o, 1, 2);
    REQUIRE_MESSAGE(second, comb::test::why(second));
    REQUIRE(second->size() == 1);
    CHECK((*second)[0].test_size == (*folds)[1].test.size());
    CHECK((*second)[0].metrics.total() == (*folds)[1].test.size());
    auto past = run_kfold(*ds, 3, tokenizer_protocol::training_part, o, 1, 4);
    REQUIRE_FALSE(past);
    CHECK(comb::is(past.error(), comb::errc::invalid_argument));
    CHECK(comb::describe(past.error()).find("first fold 4") != std::string::npos);
    auto abl = run_ablations(*ds, o);
    REQUIRE_MESSAGE(abl, comb::test::why(abl));
    REQUIRE(abl->size() == ablations().size());
    for (size_t i = 0; i < abl->size(); ++i) {
      CHECK((*abl)[i].variant == &ablations()[i]);
      CHECK((*abl)[i].result.metrics.total() == (*abl)[0].result.metrics.total());
    }
  }

  TEST_CASE("validation lines: CSIC's own training requests, never added ones, unless asked") {
    if (!test::have_csic()) {
      MESSAGE("CSIC 2010 not found at " << test::csic_dir() << ": skipped");
      return;
    }
    namespace fs = std::filesystem;
    auto dir = fs::temp_directory_path() / ("comb_eval_val_" + std::to_string(::getpid()));
    fs::create_directories(dir / "attacks");
    fs::create_directories(dir / "benign");
    {
      std::ofstream a(dir / "attacks" / "sqli.txt");
      std::ofstream b(dir / "benign" / "names.txt");
      for (int i = 0; i < 150; ++i) {
        a << "' or " << i << "=" << i << " --\n";
        b << "Name Number" << i << "\n";
      }
    }
    auto sets = load_payload_dir(dir.string());
    std::error_code ec;
    fs::remove_all(dir, ec);
    REQUIRE_MESSAGE(sets, comb::test::why(sets));
    auto ds = load_csic(test::csic_dir(), 60);
    REQUIRE(ds);
    std::vector<int> labels;
    for (auto& r : ds->requests)
      labels.push_back(r.label);
    auto sp = stratified_share(labels, 0.6, 1);
    REQUIRE(sp);
    augment_options aug;
    aug.payloads = &*sets;
    eval_options o;
    o.config.vocab_size = 300;
    o.config.model.embed = 8;
    o.config.model.filters = 4;
    o.config.model.seq_len = 64;
    o.train.max_epochs = 1;
    o.augment = &aug;
    const size_t n = ds->requests.size();
    auto own = run_experiment(*ds, *sp, tokenizer_protocol::training_part, o);
    REQUIRE_MESSAGE(own, comb::test::why(own));
    REQUIRE(own->augmented > 100);
    // The same lines as a validation split of CSIC's training part alone: the added requests
    // do not change them, and none is a test request.
    auto expect = validation_split(sp->train, labels, o.validation_share, o.seed + 17);
    CHECK(own->validation == expect.test);
    for (auto i : own->validation) {
      CHECK(i < n);
      CHECK(std::find(sp->test.begin(), sp->test.end(), i) == sp->test.end());
    }
    // The earlier behaviour, kept for comparison: added requests are validation lines too.
    o.validation = validation_lines::all;
    auto all = run_experiment(*ds, *sp, tokenizer_protocol::training_part, o);
    REQUIRE_MESSAGE(all, comb::test::why(all));
    CHECK(all->augmented == own->augmented);
    auto added = std::count_if(all->validation.begin(), all->validation.end(),
                               [&](size_t i) { return i >= n; });
    CHECK(added > 0);
    CHECK(all->validation.size() > own->validation.size());
  }

} // TEST_SUITE
