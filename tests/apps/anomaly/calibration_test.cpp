// Tests of the detector's calibrated threshold (chosen, saved, read back, used), of older
// model files (no decoding, no keywords, threshold 0.5), of the held-out families saved with
// a model, and of the out-of-distribution evaluation (library, held-out rows, and `comb
// anomaly eval --ood` on a tiny directory).
#include "apps/anomaly/calibration.hpp"
#include "apps/anomaly/keywords.hpp"
#include "apps/anomaly/ood_eval.hpp"
#include "apps/anomaly/trainer.hpp"

#include "base/errc.hpp"
#include "tests/apps/anomaly/test_data.hpp"
#include "tests/apps/anomaly/tiny_detector.hpp"
#include "tests/test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace comb;
using namespace comb::anomaly;
namespace fs = std::filesystem;

namespace {

// A payload directory with two attack families and two benign sets, removed at the end.
struct tiny_dir {
  fs::path path;
  tiny_dir() {
    path = fs::temp_directory_path() / ("comb_ood_" + std::to_string(::getpid()));
    fs::create_directories(path / "attacks");
    fs::create_directories(path / "benign");
    std::ofstream(path / "attacks" / "sqli.txt") << "# test\n' or 1=1 --\n1 union select 1\n";
    std::ofstream(path / "attacks" / "xss.txt") << "<script>alert(1)</script>\n";
    std::ofstream(path / "benign" / "names.txt") << "Zoë\nΣοφοκλής\nO'Brien\n山岸 裕樹\n";
    std::ofstream(path / "benign" / "prices.txt") << "12,50 €\n$3\n";
  }
  ~tiny_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<http_request> base_requests() {
  std::vector<http_request> out;
  for (auto& raw :
       {"GET http://h/a.jsp?id=2&B1=Entrar HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST http://h/p.jsp HTTP/1.1\r\nContent-Length: 9\r\nHost: h\r\n\r\nnombre=x\r\n"}) {
    auto r = parse_http_request(raw);
    REQUIRE(r);
    out.push_back(*r);
  }
  return out;
}

} // namespace

TEST_SUITE("apps.anomaly.calibration") {
  TEST_CASE("threshold_for keeps false positives at or under the target") {
    std::vector<float> s;
    for (int i = 0; i < 100; ++i)
      s.push_back(static_cast<float>(i) / 100.0f);
    auto t = threshold_for(s, 0.05);
    size_t fp = 0;
    for (auto x : s)
      fp += x >= t ? 1 : 0;
    CHECK(fp == 5);
    CHECK(t > 0.94f);
    CHECK(t <= 0.95f);
    // Ties at the top: as low as the ties allow, never above 1.
    std::vector<float> ones(10, 1.0f);
    CHECK(threshold_for(ones, 0.01) == 1.0f);
    CHECK(threshold_for({}, 0.01) == 0.0f);
  }

  TEST_CASE("threshold_for_weighted counts weight, not lines; equal weights agree") {
    std::vector<float> s;
    std::vector<double> w;
    for (int i = 0; i < 100; ++i) {
      s.push_back(static_cast<float>(i) / 100.0f);
      w.push_back(i < 50 ? 1.0 : 3.0);
    }
    // Total weight 200: 6% allows 12, i.e. the top 4 lines of weight 3 (not 12 lines).
    auto t = threshold_for_weighted(s, w, 0.06);
    size_t fp = 0;
    for (auto x : s)
      fp += x >= t ? 1 : 0;
    CHECK(fp == 4);
    std::vector<double> ones(s.size(), 1.0);
    for (double target : {0.0, 0.01, 0.05, 0.37})
      CHECK(threshold_for_weighted(s, ones, target) == threshold_for(s, target));
    // Ties go together; no weight, no threshold.
    CHECK(threshold_for_weighted({1.0f, 1.0f, 0.2f}, {1, 1, 1}, 0.4) == 1.0f);
    CHECK(threshold_for_weighted({0.3f}, {0.0}, 0.01) == 0.0f);
  }

  TEST_CASE("the threshold and its calibration are saved with the model and read back") {
    auto d = tiny::tiny_detector();
    CHECK(d.config().threshold == 0.5f);
    d.set_threshold(0.987654321f, "chosen on\nheld-out values");
    auto bytes = d.serialize();
    REQUIRE(bytes);
    auto back = detector::deserialize(*bytes);
    REQUIRE(back);
    CHECK(back->config().threshold == doctest::Approx(0.987654321f).epsilon(1e-7));
    CHECK(back->config().calibration == "chosen on held-out values");
    CHECK(back->config().text.decode == d.config().text.decode);
    CHECK(back->config().held_out.empty());
    // The families held out of training, in order; a list with an empty name is refused.
    detector_config h;
    h.held_out = {"ssti", "nosql"};
    CHECK(h.serialize().find("train.held_out=ssti,nosql\n") != std::string::npos);
    auto h2 = detector_config::deserialize(h.serialize());
    REQUIRE(h2);
    CHECK(h2->held_out == h.held_out);
    CHECK(detector_config{}.serialize().find("held_out") == std::string::npos);
    auto bad = detector_config::deserialize("train.held_out=ssti,,nosql\n");
    REQUIRE_FALSE(bad);
    CHECK(is(bad.error(), errc::bad_model));
  }

  TEST_CASE("train_detector records the families held out of its training") {
    tiny_dir dir;
    auto sets = load_payload_dir(dir.path.string());
    REQUIRE(sets);
    // A tiny data set: the two base requests, normal, and attacks in them, anomalous.
    auto reqs = base_requests();
    csic_dataset ds;
    for (int k = 0; k < 20; ++k)
      for (size_t b = 0; b < reqs.size(); ++b) {
        labeled_request n;
        n.request = reqs[b];
        n.request.url += (n.request.url.find('?') == std::string::npos ? "?k=" : "&k=")
                         + std::to_string(k);
        ds.requests.push_back(n);
        auto a = n;
        a.request.url += "%27+or+1%3D1--";
        a.label = 1;
        ds.requests.push_back(a);
      }
    detector_config cfg;
    cfg.vocab_size = 300;
    cfg.model.vocab = 300;
    cfg.model.embed = 8;
    cfg.model.filters = 4;
    cfg.model.seq_len = 64;
    cfg.model.prefer_gpu = false;
    train_options o;
    o.max_epochs = 1;
    auto train = [&](std::vector<std::string> holdout) {
      augment_options aug;
      aug.payloads = &*sets;
      aug.holdout = std::move(holdout);
      auto t = train_detector(ds, cfg, 0.25, o, aug, 0.5);
      REQUIRE_MESSAGE(t, comb::test::why(t));
      auto bytes = t->model.serialize();
      REQUIRE(bytes);
      auto back = detector::deserialize(*bytes);
      REQUIRE(back);
      return back->config().held_out;
    };
    CHECK(train({"xss"}) == std::vector<std::string>{"xss"});
    CHECK(train({}).empty());
  }

  TEST_CASE("older config text: no decoding, no keywords, threshold 0.5; newer lists refused") {
    auto c = detector_config::deserialize("vocab_size=300\ntext.cookie=drop\n"
                                          "text.zero_digits=1\ntext.fold_value_letters=1\n");
    REQUIRE(c);
    CHECK_FALSE(c->text.decode);
    CHECK(c->text.keywords == 0);
    CHECK(c->threshold == 0.5f);
    CHECK(c->calibration.empty());
    // Such a model sees what it was trained on: the old fold.
    auto r = parse_http_request("GET /a?q=%3Cscript%3E HTTP/1.1\r\n\r\n");
    REQUIRE(r);
    CHECK(to_model_text(*r, c->text) == "GET /a?q=%3Caaaaaa%3E HTTP/0.0");
    auto v2 = detector_config::deserialize("text.decode=1\ntext.keywords=1\nthreshold=0.75\n");
    REQUIRE(v2);
    CHECK(to_model_text(*r, v2->text) == "GET /a?q=<script> HTTP/1.1");
    CHECK(v2->threshold == 0.75f);
    CHECK_FALSE(v2->text.header_urls); // written before header_urls: Referer as it is
    CHECK_FALSE(v2->text.originals);   // written before originals: the decoded view alone
    detector_config h;
    h.text.keywords = 2;
    h.text.header_urls = true;
    h.text.decode = true;
    h.text.originals = true;
    auto h2 = detector_config::deserialize(h.serialize());
    REQUIRE(h2);
    CHECK(h2->text.header_urls);
    CHECK(h2->text.keywords == 2);
    CHECK(h2->text.originals);
    CHECK(to_model_text(*r, h2->text) == "GET /a?q=<script>\x1f" "%3Caaaaaa%3E HTTP/0.0");
    auto newer = detector_config::deserialize(
      "text.keywords=" + std::to_string(keyword_list_version + 1) + "\n");
    REQUIRE_FALSE(newer);
    CHECK(is(newer.error(), errc::bad_model));
    CHECK_FALSE(detector_config::deserialize("threshold=1.5\n"));
  }

  TEST_CASE("calibrate chooses a threshold that holds false positives on its sets") {
    tiny_dir dir;
    auto d = tiny::tiny_detector();
    auto sets = load_payload_dir(dir.path.string());
    REQUIRE(sets);
    // Every line a calibration line: the tiny sets are too small for the 60/20/20 split.
    payload_dir all = *sets;
    for (auto& s : all.benign) {
      std::vector<std::string> lines;
      for (auto& l : s.lines)
        for (int k = 0; k < 200 && lines.size() < 60; ++k) {
          auto v = l + " " + std::to_string(k);
          if (use_of(v) == line_use::calibration)
            lines.push_back(v);
        }
      s.lines = lines;
    }
    auto reqs = base_requests();
    std::vector<const http_request*> bases{&reqs[0], &reqs[1]};
    auto c = calibrate(d, bases, all, 0.05, 1);
    REQUIRE(c);
    CHECK(c->benign_sets == 2);
    CHECK_FALSE(c->worst_set.empty());
    CHECK(c->site_requests == 0);
    CHECK(c->describe().find("another site") == std::string::npos);
    CHECK(c->benign_values > 50);
    CHECK(c->non_latin_values > 10);
    CHECK(c->fp_all <= 0.05);
    CHECK(c->fp_non_latin <= 0.05);
    CHECK(c->threshold > 0.0f);
    CHECK(c->threshold <= 1.0f);
    CHECK(c->describe().find("non-Latin") != std::string::npos);
    // Another site's benign requests: a group of their own, held to the target too (with two
    // requests, 5% allows none).
    auto s = calibrate(d, bases, all, 0.05, 1, bases);
    REQUIRE(s);
    CHECK(s->site_requests == 2);
    CHECK(s->fp_site == 0.0);
    CHECK(s->threshold >= c->threshold);
    CHECK(s->describe().find("another site") != std::string::npos);
  }

  TEST_CASE("augmentation with another site: its requests as normal, the lines put into them") {
    tiny_dir dir;
    auto sets = load_payload_dir(dir.path.string());
    REQUIRE(sets);
    auto reqs = base_requests();
    augment_options o;
    o.payloads = &*sets;
    o.attack_copies = o.benign_copies = o.site_copies = 1;
    auto plain = augmentation({&reqs[0]}, o);
    REQUIRE(plain);
    REQUIRE_FALSE(plain->empty());
    o.site = {&reqs[1]};
    auto with = augmentation({&reqs[0]}, o);
    REQUIRE(with);
    // The same lines again, into the site's request, and the site's request itself.
    CHECK(with->size() == 2 * plain->size() + 1);
    size_t site_normal = 0, into_site = 0;
    for (auto& r : *with) {
      bool site_path = r.request.url.find("p.jsp") != std::string::npos;
      site_normal += site_path && r.label == 0 && r.request.body == reqs[1].body ? 1 : 0;
      into_site += site_path ? 1 : 0;
    }
    CHECK(site_normal >= 1);
    CHECK(into_site == plain->size() + 1);
  }

  TEST_CASE("the OOD suite and table: every family and set, all and non-Latin rows") {
    tiny_dir dir;
    auto sets = load_payload_dir(dir.path.string());
    REQUIRE(sets);
    auto reqs = base_requests();
    std::vector<const http_request*> bases{&reqs[0], &reqs[1]};
    auto suite = make_ood_suite(bases, *sets, {});
    REQUIRE(suite);
    CHECK(suite->cases.size() == 9);
    size_t non_latin = 0;
    for (auto& c : suite->cases)
      non_latin += c.non_latin ? 1 : 0;
    CHECK(non_latin == 2);
    std::vector<float> scores;
    for (auto& c : suite->cases)
      scores.push_back(c.attack ? 0.9f : 0.1f);
    auto m = model_column(scores, 0.5f, "model");
    ood_column none{"rules", std::vector<bool>(scores.size(), false)};
    auto table = ood_table(*suite, {m, none, or_column(m, none, "either")});
    CHECK(table.find("sqli") != std::string::npos);
    CHECK(table.find("prices") != std::string::npos);
    CHECK(table.find("benign, non-Latin") != std::string::npos);
    // Recall 1 for the model, 0 for the rules; FP 0 for both.
    auto row = table.substr(table.find("  all attacks"));
    row = row.substr(0, row.find('\n'));
    CHECK(row.ends_with(" 3  1.0000  0.0000  1.0000"));
    auto benign = table.substr(table.find("  all benign"));
    benign = benign.substr(0, benign.find('\n'));
    CHECK(benign.ends_with(" 6  0.0000  0.0000  0.0000"));
    CHECK(ood_threshold(*suite, scores, 0.01) > 0.1f);
    // Nothing held out: no held-out rows.
    CHECK(table.find("held out") == std::string::npos);
    CHECK(table.find("held-out families") == std::string::npos);
    CHECK(ood_table(*suite, {m}, {"ssti"}) == ood_table(*suite, {m})); // not a family here
    // xss held out of training: its row is marked, and recall is also given over the
    // held-out families and over the trained ones.
    auto xss = std::find_if(suite->cases.begin(), suite->cases.end(), [&](const ood_case& c) {
      return suite->sets[c.set].name == "xss";
    });
    REQUIRE(xss != suite->cases.end());
    scores[static_cast<size_t>(xss - suite->cases.begin())] = 0.2f; // missed
    auto missed = model_column(scores, 0.5f, "model");
    auto held = ood_table(*suite, {missed}, {"xss"});
    CHECK(held.find("xss (held out)") != std::string::npos);
    CHECK(held.find("sqli (held out)") == std::string::npos);
    auto line = [&](const std::string& name) {
      auto at = held.find("  " + name);
      REQUIRE(at != std::string::npos);
      auto l = held.substr(at);
      return l.substr(0, l.find('\n'));
    };
    CHECK(line("held-out families").ends_with(" 1  0.0000"));
    CHECK(line("trained families").ends_with(" 2  1.0000"));
    CHECK(line("all attacks").ends_with(" 3  0.6667"));
  }

  TEST_CASE("comb anomaly eval --ood on a tiny directory prints the table") {
    if (!anomaly::test::have_csic()) {
      MESSAGE("CSIC 2010 not found in " << anomaly::test::csic_dir() << ": skipped");
      return;
    }
    tiny_dir dir;
    auto model = dir.path / "tiny.safetensors";
    auto d = tiny::tiny_detector();
    d.set_threshold(0.42f, "test");
    REQUIRE_FALSE(d.save(model.string()));
    auto cmd = std::string{COMB_BINARY_DIR} + "/comb anomaly eval --quiet --limit 30 --ood "
               + dir.path.string() + " -m " + model.string() + " 2>&1";
    std::string out;
    auto* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::array<char, 4096> buf{};
    while (auto n = std::fread(buf.data(), 1, buf.size(), p))
      out.append(buf.data(), n);
    CHECK(::pclose(p) == 0);
    CHECK(out.find("saved threshold 0.420000") != std::string::npos);
    CHECK(out.find("xss") != std::string::npos);
    CHECK(out.find("names") != std::string::npos);
    CHECK(out.find("benign, non-Latin") != std::string::npos);
    CHECK(out.find("model@1%FP") != std::string::npos);
  }

  TEST_CASE("comb anomaly score --with-crs: score, model and CRS verdicts, rule ids, either") {
    if (!fs::exists("/usr/share/modsecurity-crs/rules")) {
      MESSAGE("modsecurity-crs not installed: skipped");
      return;
    }
    tiny_dir dir;
    auto model = dir.path / "tiny.safetensors";
    REQUIRE_FALSE(tiny::tiny_detector().save(model.string()));
    auto input = dir.path / "requests.txt";
    const std::string headers = "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
                                "Accept: text/html\r\nHost: localhost:8080\r\n\r\n";
    std::ofstream(input) << "GET http://localhost:8080/tienda1/index.jsp?id=2 HTTP/1.1\r\n"
                         << headers
                         << "GET http://localhost:8080/tienda1/a.jsp?id=2%27+OR+%271%27%3D%271"
                            "+UNION+SELECT+password+FROM+users-- HTTP/1.1\r\n"
                         << headers;
    // At threshold 1 the model calls nothing anomalous, at 0 everything: the combined
    // verdict is CRS's in the first case, anomalous in the second.
    auto run = [&](const char* threshold) {
      auto cmd = std::string{COMB_BINARY_DIR} + "/comb anomaly score --with-crs --threshold "
                 + threshold + " -m " + model.string() + " " + input.string() + " 2>/dev/null";
      std::string out;
      auto* p = ::popen(cmd.c_str(), "r");
      REQUIRE(p != nullptr);
      std::array<char, 4096> buf{};
      while (auto n = std::fread(buf.data(), 1, buf.size(), p))
        out.append(buf.data(), n);
      CHECK(::pclose(p) == 0);
      // One row per request: #, score, model, crs, crs_rules, combined, request.
      std::vector<std::vector<std::string>> rows;
      std::istringstream lines(out);
      for (std::string line; std::getline(lines, line);) {
        std::vector<std::string> cols;
        std::istringstream fields(line);
        for (std::string f; std::getline(fields, f, '\t');)
          cols.push_back(f);
        rows.push_back(cols);
      }
      return rows;
    };
    auto strict = run("1");
    REQUIRE(strict.size() == 3);
    CHECK(strict[0] == std::vector<std::string>{"#", "score", "model", "crs", "crs_rules",
                                                "combined", "request"});
    REQUIRE(strict[1].size() == 7);
    REQUIRE(strict[2].size() == 7);
    CHECK(strict[1][2] == "normal");
    CHECK(strict[1][3] == "pass");
    CHECK(strict[1][4] == "-");
    CHECK(strict[1][5] == "normal");
    CHECK(strict[2][2] == "normal");
    CHECK(strict[2][3] == "flagged");
    CHECK(strict[2][4].find("949110") != std::string::npos); // the anomaly-score block rule
    CHECK(strict[2][5] == "anomalous");
    auto lax = run("0");
    REQUIRE(lax.size() == 3);
    REQUIRE(lax[1].size() == 7);
    CHECK(lax[1][1] == strict[1][1]); // the same score
    CHECK(lax[1][2] == "anomalous");
    CHECK(lax[1][3] == "pass");
    CHECK(lax[1][5] == "anomalous");
  }
}
