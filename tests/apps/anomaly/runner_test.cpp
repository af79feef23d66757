// Tests of the anomaly detector's model runner (apps/anomaly/anomaly_runner.hpp): a request's
// score is a function of the request alone (issue 22: padding to a longer batch mate used to
// change it), the runner scores a batch of tasks like the detector scores each request alone,
// a task with a missing or mistyped tensor gets its own error, and check() refuses files that
// are not detectors, naming why.
#include "apps/anomaly/anomaly_runner.hpp"
#include "base/errc.hpp"
#include "kernels/backend.hpp"
#include "kernels/models/textcnn.hpp"
#include "runtime/pieces/model_runner.hpp"
#include "tests/apps/anomaly/tiny_detector.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

using namespace comb;
using namespace comb::anomaly;
using runtime::tensor_dtype;

namespace {

std::vector<float> alone(detector& d, const std::vector<std::string>& reqs) {
  std::vector<float> out;
  for (auto& r : reqs) {
    auto p = d.score_raw({std::string_view{r}});
    REQUIRE_MESSAGE(p, comb::test::why(p));
    out.push_back(p->at(0));
  }
  return out;
}

runtime::task_tensors requests_task(uint64_t id, const std::vector<std::string>& reqs) {
  runtime::task_tensors t;
  t.task_id = id;
  t.tensors.add_strings("requests", std::vector<std::string_view>(reqs.begin(), reqs.end()));
  return t;
}

/// The f32 / u8 values of output tensor `name` of `p`.
template <class T>
std::vector<T> values(const runtime::tensor_pack& p, const std::string& name, tensor_dtype t) {
  auto views = p.views();
  REQUIRE_MESSAGE(views, comb::test::why(views));
  for (auto& v : *views)
    if (v.spec->name == name) {
      REQUIRE(v.spec->type() == t);
      REQUIRE(v.spec->shape.size() == 1);
      std::vector<T> out(static_cast<size_t>(v.spec->numel()));
      std::memcpy(out.data(), v.data, out.size() * sizeof(T));
      return out;
    }
  FAIL("no output tensor " << name);
  return {};
}

} // namespace

TEST_SUITE("apps.anomaly.runner") {
  TEST_CASE("a request scores the same alone and among longer and shorter requests") {
    std::string engine;
    SUBCASE("fused engine (rows of their own lengths)") {
      engine = "fused";
    }
    SUBCASE("kernels engine (rows of their own lengths too)") {
      engine = "kernels";
    }
    CAPTURE(engine);
    auto d = tiny::tiny_detector(7, engine);
    auto reqs = tiny::sample_requests();
    auto one = alone(d, reqs);
    std::vector<std::string_view> views(reqs.begin(), reqs.end());
    // Mixed lengths, in several orders and batch sizes.
    for (int batch : {1, 3, 256}) {
      auto mixed = d.score_raw(views, nullptr, batch);
      REQUIRE_MESSAGE(mixed, comb::test::why(mixed));
      for (size_t i = 0; i < reqs.size(); ++i)
        CHECK_MESSAGE((*mixed)[i] == one[i], "request " << i << " batch " << batch);
    }
    std::reverse(views.begin(), views.end());
    auto rev = d.score_raw(views);
    REQUIRE(rev);
    for (size_t i = 0; i < reqs.size(); ++i)
      CHECK((*rev)[reqs.size() - 1 - i] == one[i]);
    // What the grouping prevents: padded to the longest request, a short one scores
    // differently (so the checks above can fail).
    std::vector<std::vector<int32_t>> seqs;
    for (auto& r : reqs)
      seqs.push_back(d.encode_text(to_model_text_lenient(r, d.config().text)));
    std::vector<size_t> idx(seqs.size());
    for (size_t i = 0; i < idx.size(); ++i)
      idx[i] = i;
    std::vector<int32_t> buf;
    int len = pad_batch(seqs, idx, 0, seqs.size(), 4, buf);
    auto padded = d.model().predict(buf, static_cast<int>(seqs.size()), len);
    REQUIRE(padded);
    size_t differ = 0;
    for (size_t i = 0; i < reqs.size(); ++i)
      differ += (*padded)[i] != one[i];
    CHECK_MESSAGE(differ > 0, "padding changed no score: the test above proves nothing");
  }

  TEST_CASE("the runner scores a batch of tasks as the detector scores each request alone") {
    auto d = tiny::tiny_detector();
    auto reqs = tiny::sample_requests();
    auto one = alone(d, reqs);
    auto bytes = d.serialize();
    REQUIRE(bytes);
    anomaly_runner r;
    CHECK(r.kind() == "anomaly-detector");
    auto summary = r.check(*bytes);
    REQUIRE_MESSAGE(summary, comb::test::why(summary));
    CHECK_MESSAGE(summary->find("anomaly detector: TextCNN vocab 320, embed 8, kernels 2,3,4 x 6 "
                                "filters, 96 tokens")
                    == 0,
                  *summary);
    auto m = r.load(*bytes, kernels::cpu());
    REQUIRE_MESSAGE(m, comb::test::why(m));
    CHECK((*m)->memory_bytes() > 320 * 8 * sizeof(float));

    std::vector<std::string> first(reqs.begin(), reqs.begin() + 4);
    std::vector<std::string> second(reqs.begin() + 4, reqs.end());
    auto t1 = requests_task(1, first);
    auto t2 = requests_task(2, second);
    runtime::task_tensors missing;
    missing.task_id = 3;
    uint8_t px[4] = {1, 2, 3, 4};
    missing.tensors.add("x", tensor_dtype::u8, {4}, px);
    runtime::task_tensors wrong;
    wrong.task_id = 4;
    wrong.tensors.add("requests", tensor_dtype::u8, {4}, px);
    auto empty = requests_task(5, {});
    auto out = (*m)->infer({&t1, &missing, &t2, &wrong, &empty});
    REQUIRE(out.size() == 5);
    REQUIRE_MESSAGE(out[0], comb::test::why(out[0]));
    REQUIRE_MESSAGE(out[2], comb::test::why(out[2]));
    auto s1 = values<float>(*out[0], "score", tensor_dtype::f32);
    auto s2 = values<float>(*out[2], "score", tensor_dtype::f32);
    auto p1 = values<uint8_t>(*out[0], "parsed", tensor_dtype::u8);
    REQUIRE(s1.size() == first.size());
    REQUIRE(s2.size() == second.size());
    for (size_t i = 0; i < first.size(); ++i)
      CHECK(s1[i] == one[i]);
    for (size_t i = 0; i < second.size(); ++i)
      CHECK(s2[i] == one[first.size() + i]);
    CHECK(p1 == std::vector<uint8_t>{1, 1, 1, 1});
    CHECK(values<uint8_t>(*out[2], "parsed", tensor_dtype::u8)[0] == 0); // binary garbage

    REQUIRE_FALSE(out[1]);
    CHECK(is(out[1].error(), errc::invalid_argument));
    CHECK_MESSAGE(describe(out[1].error()).find("task 3 has no tensor 'requests'")
                    != std::string::npos,
                  describe(out[1].error()));
    CHECK_MESSAGE(describe(out[1].error()).find("x u8 [4]") != std::string::npos,
                  describe(out[1].error()));
    REQUIRE_FALSE(out[3]);
    CHECK(is(out[3].error(), errc::invalid_argument));
    CHECK_MESSAGE(describe(out[3].error()).find("task 4: tensor 'requests' is u8")
                    != std::string::npos,
                  describe(out[3].error()));
    REQUIRE_MESSAGE(out[4], comb::test::why(out[4]));
    CHECK(values<float>(*out[4], "score", tensor_dtype::f32).empty());
  }

  TEST_CASE("check refuses files that are not anomaly detectors, naming why") {
    anomaly_runner r;
    auto d = tiny::tiny_detector();
    auto bytes = *d.serialize();
    auto truncated = r.check(std::string_view{bytes}.substr(0, bytes.size() / 2));
    REQUIRE_FALSE(truncated);
    CHECK(is(truncated.error(), errc::bad_model));
    CHECK_MESSAGE(describe(truncated.error()).find("anomaly detector: ") != std::string::npos,
                  describe(truncated.error()));
    auto junk = r.check("not a model at all");
    REQUIRE_FALSE(junk);
    CHECK(is(junk.error(), errc::bad_model));
    // A TextCNN without the detector's metadata (comb.kind, tokenizer).
    kernels::textcnn_config kc;
    kc.vocab = 50;
    kc.embed = 4;
    kc.filters = 3;
    auto plain = kernels::textcnn::create(kc);
    REQUIRE(plain);
    auto pb = plain->to_bytes();
    REQUIRE(pb);
    auto other = r.check(*pb);
    REQUIRE_FALSE(other);
    CHECK(is(other.error(), errc::bad_model));
    CHECK_MESSAGE(describe(other.error()).find("not an anomaly detector") != std::string::npos,
                  describe(other.error()));
    // Through the registry: the kind comes from the file.
    register_anomaly_runner();
    auto info = runtime::check_model(bytes);
    REQUIRE_MESSAGE(info, comb::test::why(info));
    CHECK(info->kind == "anomaly-detector");
    CHECK(info->summary.find("anomaly detector") == 0);
  }
}
