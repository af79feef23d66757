// kernels.sgemm_split: split sgemm (kernels/detail/blas.hpp: parts of C's rows or columns on
// the CPU pool, each a single-threaded OpenBLAS call) gives what one OpenBLAS call gives, for
// every transpose combination, row and column splits, strides larger than the width, beta.
#include "kernels/cpu_backend.hpp"
#include "kernels/detail/blas.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

using namespace comb::kernels;

namespace {

struct gemm_case {
  bool ta, tb;
  int64_t m, n, k;
};

/// C (m x n, row stride n + 3) = op(A) op(B) + 0.5 C, in split mode or not.
std::vector<float> run(const gemm_case& g, bool split, const std::vector<float>& a,
                       const std::vector<float>& b, const std::vector<float>& c0) {
  cpu_backend::set_sgemm_split(split);
  int64_t lda = (g.ta ? g.m : g.k) + 1, ldb = (g.tb ? g.k : g.n) + 2, ldc = g.n + 3;
  auto c = c0;
  detail::sgemm(g.ta, g.tb, g.m, g.n, g.k, 1.0f, a.data(), lda, b.data(), ldb, 0.5f, c.data(), ldc);
  return c;
}

} // namespace

TEST_SUITE("kernels.sgemm_split") {
  TEST_CASE("split sgemm equals one OpenBLAS call") {
    cpu_backend::set_threads(2); // a split needs two pool threads, whatever the machine
    std::mt19937 rng{3};
    std::uniform_real_distribution<float> u{-1, 1};
    auto fill = [&](size_t n) {
      std::vector<float> v(n);
      for (auto& x : v)
        x = u(rng);
      return v;
    };
    // m >= 128: rows split; m < 128, n >= 128: columns split; both small: one call.
    std::vector<gemm_case> cases;
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (auto [m, n, k] : {std::tuple{300, 45, 70}, {50, 330, 33}, {20, 30, 40}})
          cases.push_back({ta, tb, m, n, k});
    for (auto& g : cases) {
      CAPTURE(g.ta);
      CAPTURE(g.tb);
      CAPTURE(g.m);
      CAPTURE(g.n);
      int64_t lda = (g.ta ? g.m : g.k) + 1, ldb = (g.tb ? g.k : g.n) + 2, ldc = g.n + 3;
      auto a = fill(static_cast<size_t>((g.ta ? g.k : g.m) * lda));
      auto b = fill(static_cast<size_t>((g.tb ? g.n : g.k) * ldb));
      auto c0 = fill(static_cast<size_t>(g.m * ldc));
      auto whole = run(g, false, a, b, c0);
      auto split = run(g, true, a, b, c0);
      size_t bad = 0;
      for (size_t i = 0; i < whole.size(); ++i)
        if (!(std::fabs(whole[i] - split[i]) <= 1e-4f + std::fabs(whole[i]) * 1e-5f)) {
          if (bad++ < 3)
            MESSAGE("element " << i << ": one call " << whole[i] << ", split " << split[i]);
        }
      CHECK(bad == 0);
      // The padding between rows of C is never written.
      for (int64_t r = 0; r < g.m; ++r)
        for (int64_t j = g.n; j < ldc; ++j)
          CHECK(split[static_cast<size_t>(r * ldc + j)] == c0[static_cast<size_t>(r * ldc + j)]);
    }
    cpu_backend::set_sgemm_split(false);
    CHECK(!cpu_backend::sgemm_split());
    cpu_backend::set_sgemm_split(true);
    CHECK(cpu_backend::sgemm_split());
    CHECK(cpu_backend::blas_info().find("split") != std::string::npos);
    cpu_backend::set_sgemm_split(false);
  }
}
