// perf_vision: Comb's MobileNetV2 (and the detector) on the CPU against PyTorch's torchvision
// MobileNetV2 measured in the same run, and Comb's fused GEMM against OpenBLAS sgemm plus a
// separate bias/ReLU6 pass on MobileNetV2's 1x1 layers. Prints name, Comb, baseline, ratio
// (baseline time / Comb time: above 1 means Comb is faster), unit.
// Usage: perf_vision [--benchmarks=mobilenet_v2,pointwise,centernet] [--quick] [--threads N]
#include "perf/bench_env.hpp"
#include "kernels/cpu_backend.hpp"
#include "kernels/models/centernet.hpp"
#include "kernels/models/mobilenet_v2.hpp"
#include "kernels/ops/fused_gemm.hpp"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

extern "C" char* openblas_get_corename(void);
extern "C" char* openblas_get_config(void);

using namespace comb::kernels;

namespace {

using clock_type = std::chrono::steady_clock;

/// Median milliseconds of `iters` runs of fn after `warm` warm-ups.
template <class F>
double median_ms(int warm, int iters, F&& fn) {
  for (int i = 0; i < warm; ++i)
    fn();
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    auto t0 = clock_type::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void row(const std::string& name, double comb, double base, const char* unit) {
  std::printf("%-40s comb %10.3f  baseline %10.3f  ratio %6.2fx  %s\n", name.c_str(), comb, base,
              base / comb, unit);
}

/// Runs the PyTorch baseline in its own phase, after Comb's (whose pools sleep by then), with
/// `env` before the command; returns ms for each batch (or -1 when PyTorch is absent).
std::vector<double> torch_mobilenet(int iters, int threads, const std::vector<int>& batches,
                                    const std::string& env = "") {
  std::string cmd = env + "/usr/bin/python3 " COMB_SOURCE_DIR "/perf/kernels/mobilenet_v2_torch.py "
                    + std::to_string(iters) + " " + std::to_string(threads);
  for (int b : batches)
    cmd += " " + std::to_string(b);
  cmd += " 2>&1";
  std::vector<double> out(batches.size(), -1.0);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p)
    return out;
  char line[512];
  while (std::fgets(line, sizeof line, p)) {
    int b = 0;
    double ms = 0;
    if (std::sscanf(line, "torch_mobilenet_v2 batch %d ms %lf", &b, &ms) == 2) {
      for (size_t i = 0; i < batches.size(); ++i)
        if (batches[i] == b)
          out[i] = ms;
    } else {
      std::printf("  (pytorch) %s", line);
    }
  }
  pclose(p);
  return out;
}

void bench_mobilenet(bool quick, int threads) {
  mobilenet_v2_config cfg;
  cfg.num_classes = 1000; // as torchvision
  cfg.tf_padding = false;
  auto m = mobilenet_v2::random(cfg, 1);
  std::vector<int> batches = {1, 8};
  int iters = quick ? 5 : 20;
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  std::vector<float> x(8 * 224 * 224 * 3);
  for (auto& v : x)
    v = d(rng);
  std::vector<double> comb_ms;
  for (int b : batches)
    comb_ms.push_back(median_ms(3, b == 1 ? iters : std::max(2, iters / 4), [&] {
      auto l = m.logits(x.data(), b);
      if (!l)
        std::abort();
    }));
  auto torch_ms = torch_mobilenet(iters, threads, batches);
  // PyTorch at its best: also with its OpenMP workers waiting passively, which on a busy
  // machine is much the faster (their spinning at each op's barrier waits on a descheduled
  // worker), and with its OpenMP threads bound to cores (as its tuning guide advises; Comb
  // pins its pool's workers too); the best figure per batch counts, and all are printed.
  auto passive = torch_mobilenet(iters, threads, batches, "OMP_WAIT_POLICY=PASSIVE ");
  auto bound = torch_mobilenet(iters, threads, batches, "OMP_PROC_BIND=true OMP_PLACES=cores ");
  for (size_t i = 0; i < batches.size(); ++i) {
    std::printf("  (pytorch batch %d: %.3f ms default, %.3f ms OMP_WAIT_POLICY=PASSIVE, %.3f ms "
                "OMP_PROC_BIND=true)\n",
                batches[i], torch_ms[i], passive[i], bound[i]);
    for (double v : {passive[i], bound[i]})
      if (v > 0 && (torch_ms[i] < 0 || v < torch_ms[i]))
        torch_ms[i] = v;
  }
  for (size_t i = 0; i < batches.size(); ++i) {
    double gflops = m.flops() * batches[i] / (comb_ms[i] * 1e6);
    std::printf("mobilenet_v2 batch %d: comb %.3f ms (%.1f GFLOP/s), pytorch %.3f ms\n", batches[i],
                comb_ms[i], gflops, torch_ms[i]);
    if (torch_ms[i] > 0)
      row("mobilenet_v2 224x224 batch " + std::to_string(batches[i]), comb_ms[i], torch_ms[i],
          "ms");
    else
      std::printf(
        "mobilenet_v2 batch %d: PyTorch absent (install python3-torch python3-torchvision)\n",
        batches[i]);
  }
}

/// All 1x1 layers of MobileNetV2 at batch 1: fused GEMM vs sgemm + separate epilogue.
void bench_pointwise(bool quick) {
  mobilenet_v2_config cfg;
  cfg.num_classes = 1000;
  cfg.tf_padding = false;
  auto m = mobilenet_v2::random(cfg, 2);
  struct job {
    int64_t rows;
    const mobilenet_v2::layer* l;
  };
  std::vector<job> jobs;
  int h = 224;
  for (auto& l : m.layers()) {
    int oh = (h + l.stride - 1) / l.stride;
    if (!l.depthwise && l.k == 1 && l.cout != 1000)
      jobs.push_back({static_cast<int64_t>(oh) * oh, &l});
    h = oh;
  }
  std::vector<float> a(112 * 112 * 96), c(112 * 112 * 96);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-1, 1);
  for (auto& v : a)
    v = d(rng);
  double flops = 0;
  for (auto& j : jobs)
    flops += 2.0 * j.rows * j.l->cin * j.l->cout;
  int iters = quick ? 5 : 20;
  double fused = median_ms(2, iters, [&] {
    for (auto& j : jobs) {
      gemm_epilogue ep;
      ep.bias = j.l->bias.data();
      ep.lo = 0;
      ep.hi = j.l->relu6 ? 6.0f : ep.hi;
      fused_gemm(a.data(), j.rows, j.l->cin, j.l->packed.packed, ep, c.data(), j.l->cout);
    }
  });
  double blas = median_ms(2, iters, [&] {
    for (auto& j : jobs) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(j.rows), j.l->cout,
                  j.l->cin, 1.0f, a.data(), j.l->cin, j.l->weights.data(), j.l->cout, 0.0f,
                  c.data(), j.l->cout);
      const float* bias = j.l->bias.data();
      float hi = j.l->relu6 ? 6.0f : 3.4e38f;
      for (int64_t r = 0; r < j.rows; ++r) {
        float* cr = c.data() + r * j.l->cout;
        for (int o = 0; o < j.l->cout; ++o)
          cr[o] = std::min(std::max(cr[o] + bias[o], 0.0f), hi);
      }
    }
  });
  std::printf("pointwise: %zu layers, %.0f MFLOP; fused %.1f GFLOP/s, OpenBLAS %.1f GFLOP/s\n",
              jobs.size(), flops / 1e6, flops / (fused * 1e6), flops / (blas * 1e6));
  row("mobilenet_v2 1x1 layers batch 1 (vs sgemm)", fused, blas, "ms");
}

void bench_centernet(bool quick) {
  centernet_config cfg;
  auto net = centernet::random(cfg, 4);
  std::vector<float> x(512 * 512 * 3, 0.1f);
  double ms = median_ms(1, quick ? 2 : 5, [&] {
    auto r = net.detect(x.data(), 512, 512, 100);
    if (!r)
      std::abort();
  });
  std::printf("centernet 512x512 batch 1: comb %.3f ms (%.1f GFLOP/s); no same-run baseline\n", ms,
              net.flops(512, 512) / (ms * 1e6));
}

} // namespace

int main(int argc, char** argv) {
  comb::perf::clean_blas_env(argv);
  std::string which = "mobilenet_v2,pointwise,centernet";
  bool quick = false;
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--benchmarks=", 0) == 0)
      which = a.substr(13);
    else if (a == "--quick")
      quick = true;
    else if (a == "--threads" && i + 1 < argc)
      threads = std::max(1, std::atoi(argv[++i]));
    else {
      std::fprintf(stderr,
                   "usage: %s [--benchmarks=mobilenet_v2,pointwise,centernet] [--quick] "
                   "[--threads N]\n",
                   argv[0]);
      return 2;
    }
  }
  auto has = [&](const char* b) {
    return ("," + which + ",").find(std::string(",") + b + ",") != std::string::npos;
  };
  cpu_backend::set_threads(threads); // the CPU pool and OpenBLAS
  std::printf(
    "machine: %u hardware threads, %d used; AVX-512 kernels: %s; BLAS: OpenBLAS %s (%s)\n",
    std::thread::hardware_concurrency(), threads, fused_gemm_uses_avx512() ? "yes" : "no",
    openblas_get_corename(), openblas_get_config());
  std::printf("Comb's CPU pool: %s\n", cpu_backend::pool_info().c_str());
  if (has("mobilenet_v2"))
    bench_mobilenet(quick, threads);
  if (has("pointwise"))
    bench_pointwise(quick);
  if (has("centernet"))
    bench_centernet(quick);
  return 0;
}
