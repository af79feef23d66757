// Benchmarks of the HTTP anomaly detector, each printed beside a baseline measured in the
// same run: BBPE training and encoding speed (against the goals: all of CSIC in
// < 60 s, >= 20 MB/s), CRS throughput and quality, and (with the model) scoring against CRS
// and training against PyTorch. Usage:
//   anomaly_bench [--benchmarks=bbpe,crs,score,train] [--data DIR] [--quick]
//                 [--vocab N] [--crs-sample N (0 = all requests)]
#include "perf/bench_env.hpp"
#include "apps/anomaly/bbpe_tokenizer.hpp"
#include "apps/anomaly/crs_engine.hpp"
#include "apps/anomaly/crs_report.hpp"
#include "apps/anomaly/csic_dataset.hpp"
#include "perf/anomaly/model_bench.hpp"
#include "base/errc.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

using namespace comb;
using namespace comb::anomaly;

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string active_blas() {
  std::ifstream f("/proc/self/maps");
  std::string line;
  std::set<std::string> libs;
  while (std::getline(f, line))
    for (const char* name : {"libopenblas", "libblas", "libmkl"})
      if (auto p = line.find(name); p != std::string::npos)
        libs.insert(line.substr(line.rfind('/') + 1));
  std::string out;
  for (auto& l : libs)
    out += (out.empty() ? "" : ",") + l;
  return out.empty() ? "none loaded" : out;
}

void bench_bbpe(const csic_dataset& ds, size_t vocab) {
  std::vector<std::string> texts;
  texts.reserve(ds.requests.size());
  size_t bytes = 0;
  for (auto& r : ds.requests) {
    texts.push_back(to_model_text(r.request));
    bytes += texts.back().size();
  }
  std::vector<std::string_view> views(texts.begin(), texts.end());
  auto t0 = clock_type::now();
  auto tok = bbpe_tokenizer::train(views, vocab);
  double train_s = seconds_since(t0);
  if (!tok) {
    std::fprintf(stderr, "bbpe: %s\n", describe(tok.error()).c_str());
    return;
  }
  std::printf("bbpe_train  %zu requests (%.1f MB) vocab %zu: %.2f s, goal 60 s, ratio goal/actual "
              "%.1f\n",
              texts.size(), static_cast<double>(bytes) / 1e6, tok->vocab_size(), train_s,
              60.0 / train_s);
  std::vector<int32_t> ids;
  size_t tokens = 0;
  t0 = clock_type::now();
  int rounds = 0;
  do {
    for (auto& t : texts) {
      ids.clear();
      tok->encode_into(t, ids);
      tokens += ids.size();
    }
    ++rounds;
  } while (seconds_since(t0) < 2.0);
  double enc_s = seconds_since(t0);
  double mbps = static_cast<double>(bytes) * rounds / 1e6 / enc_s;
  std::printf("bbpe_encode %.1f MB/s (%.2f bytes/token), goal 20 MB/s, ratio %.2f\n", mbps,
              static_cast<double>(bytes) * rounds / static_cast<double>(tokens), mbps / 20.0);
  // Baseline in the same run: the untrained tokenizer (bytes only, no merges) is the floor
  // cost of chunking and emitting one id per byte.
  bbpe_tokenizer bytes_only;
  t0 = clock_type::now();
  rounds = 0;
  do {
    for (auto& t : texts) {
      ids.clear();
      bytes_only.encode_into(t, ids);
    }
    ++rounds;
  } while (seconds_since(t0) < 1.0);
  double base = static_cast<double>(bytes) * rounds / 1e6 / seconds_since(t0);
  std::printf("bbpe_encode vs bytes-only encoding: %.1f MB/s vs %.1f MB/s, ratio %.2f\n", mbps,
              base, mbps / base);
}

void bench_crs(const csic_dataset& ds, size_t limit) {
  // A stratified sample: every k-th request, so both labels are present.
  std::vector<size_t> idx;
  size_t step = limit == 0 || limit >= ds.requests.size() ? 1 : ds.requests.size() / limit;
  for (size_t i = 0; i < ds.requests.size(); i += step)
    idx.push_back(i);
  for (int pl : {1, 2})
    for (bool allow : {false, true}) {
      crs_options o;
      o.paranoia = pl;
      o.allow_accept_charset = allow;
      o.full_target = true; // CRS at its best: the request-line target as it is
      auto e = crs_engine::create(o);
      if (!e) {
        std::fprintf(stderr, "crs: %s\n", describe(e.error()).c_str());
        return;
      }
      auto rep = run_crs(**e, ds.requests, idx);
      std::printf("%-40s %zu req: %s  %.0f req/s p50 %.3f ms p99 %.3f ms\n", rep.engine.c_str(),
                  idx.size(), rep.metrics.to_string().c_str(), rep.requests_per_second, rep.p50_ms,
                  rep.p99_ms);
      std::printf("    rules firing on false positives (rule:count): %s\n",
                  rep.top_false_positive_rules(8).c_str());
    }
}

} // namespace

int main(int argc, char** argv) {
  comb::perf::clean_blas_env(argv);
  std::string which = "bbpe,crs,score,train";
  std::string data = default_csic_dir(COMB_SOURCE_DIR);
  bool quick = false;
  size_t vocab = 8192;
  size_t crs_sample = 10000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--benchmarks=", 0) == 0)
      which = a.substr(13);
    else if (a == "--data" && i + 1 < argc)
      data = argv[++i];
    else if (a == "--quick")
      quick = true;
    else if (a == "--crs-sample" && i + 1 < argc)
      crs_sample = std::stoul(argv[++i]);
    else if (a == "--vocab" && i + 1 < argc)
      vocab = std::stoul(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: %s [--benchmarks=bbpe,crs,score,train] [--data DIR] "
                   "[--quick] [--vocab N] [--crs-sample N (0 = all)]\n",
                   argv[0]);
      return 2;
    }
  }
  auto has = [&](const char* b) {
    return ("," + which + ",").find(std::string(",") + b + ",") != std::string::npos;
  };
  std::printf("machine: %u hardware threads; BLAS: %s\n", std::thread::hardware_concurrency(),
              active_blas().c_str());
  auto ds = load_csic(data, quick ? 2000 : 0);
  if (!ds) {
    std::fprintf(stderr, "anomaly_bench: %s\n", describe(ds.error()).c_str());
    return 1;
  }
  std::printf("data: %zu requests (%zu normal, %zu anomalous) from %s\n", ds->requests.size(),
              ds->counts[0], ds->counts[1], data.c_str());
  if (has("bbpe"))
    bench_bbpe(*ds, vocab);
  if (has("crs"))
    bench_crs(*ds, quick ? 1000 : crs_sample);
  if (has("score"))
    bench::run_score_benchmark(*ds, quick ? 1000 : 5000, vocab);
  if (has("train"))
    bench::run_train_benchmark(*ds, quick ? 3200 : 12800, vocab, "/usr/bin/python3",
                               std::string{COMB_SOURCE_DIR} + "/perf/anomaly/textcnn_torch.py");
  return 0;
}
