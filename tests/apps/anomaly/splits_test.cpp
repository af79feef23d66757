// Tests of stratified splits and binary metrics.
#include "apps/anomaly/binary_metrics.hpp"
#include "apps/anomaly/splits.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <set>

using namespace comb::anomaly;

TEST_SUITE("apps.anomaly.splits") {
  TEST_CASE("stratified 5-fold: folds partition the data and keep the label ratio") {
    std::vector<int> labels;
    for (int i = 0; i < 1000; ++i)
      labels.push_back(i % 4 == 0 ? 1 : 0); // 250 anomalous
    auto folds = stratified_kfold(labels, 5, 42);
    REQUIRE(folds);
    REQUIRE(folds->size() == 5);
    std::multiset<size_t> all_test;
    for (auto& s : *folds) {
      CHECK(s.train.size() + s.test.size() == labels.size());
      size_t pos = std::count_if(s.test.begin(), s.test.end(), [&](size_t i) { return labels[i]; });
      CHECK(pos == 50);
      std::vector<size_t> both;
      std::set_intersection(s.train.begin(), s.train.end(), s.test.begin(), s.test.end(),
                            std::back_inserter(both));
      CHECK(both.empty());
      all_test.insert(s.test.begin(), s.test.end());
    }
    CHECK(all_test.size() == labels.size());
    CHECK(std::set<size_t>(all_test.begin(), all_test.end()).size() == labels.size());
    // Same seed, same folds; another seed, other folds.
    auto again = stratified_kfold(labels, 5, 42);
    auto other = stratified_kfold(labels, 5, 43);
    CHECK((*again)[0].test == (*folds)[0].test);
    CHECK((*other)[0].test != (*folds)[0].test);
    CHECK_FALSE(stratified_kfold(labels, 1, 1));
    CHECK_FALSE(stratified_kfold({0, 0, 1}, 5, 1));
  }

  TEST_CASE("stratified share and validation split") {
    std::vector<int> labels(200, 0);
    for (int i = 0; i < 40; ++i)
      labels[static_cast<size_t>(i) * 5] = 1;
    auto s = stratified_share(labels, 0.05, 1);
    REQUIRE(s);
    CHECK(s->train.size() == 10); // 8 of 160 normal + 2 of 40 anomalous
    CHECK(s->train.size() + s->test.size() == 200);
    CHECK_FALSE(stratified_share(labels, 0.0, 1));
    CHECK_FALSE(stratified_share(labels, 1.0, 1));
    auto v = validation_split(s->test, labels, 0.1, 3);
    CHECK(v.train.size() + v.test.size() == s->test.size());
    size_t pos = std::count_if(v.test.begin(), v.test.end(), [&](size_t i) { return labels[i]; });
    CHECK(pos >= 1);
  }

  TEST_CASE("metrics from confusion counts") {
    binary_metrics m;
    for (int i = 0; i < 90; ++i)
      m.add(1, true);
    for (int i = 0; i < 10; ++i)
      m.add(1, false);
    for (int i = 0; i < 95; ++i)
      m.add(0, false);
    for (int i = 0; i < 5; ++i)
      m.add(0, true);
    CHECK(m.accuracy() == doctest::Approx(185.0 / 200));
    CHECK(m.precision() == doctest::Approx(90.0 / 95));
    CHECK(m.recall() == doctest::Approx(0.9));
    CHECK(m.f1() == doctest::Approx(2 * (90.0 / 95) * 0.9 / (90.0 / 95 + 0.9)));
    binary_metrics none;
    CHECK(none.f1() == 0.0);
    auto s = summarize({m, none});
    CHECK(s.folds == 2);
    CHECK(s.mean[3] == doctest::Approx(m.f1() / 2));
    CHECK(s.stddev[3] > 0);
  }

} // TEST_SUITE
