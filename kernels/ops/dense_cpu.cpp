// Fast dense layer: OpenBLAS sgemm (bias broadcast into C first, beta = 1), gradients as
// two sgemms and a column sum.
#include "kernels/ops/dense.hpp"

#include "kernels/detail/cpu_pool.hpp"
#include "kernels/detail/simd.hpp"

#include <cblas.h>

#include <cstring>

namespace comb::kernels {

namespace {

COMB_CLONES
void column_sums(const float* a, int64_t rows, int64_t c, float* out) {
  std::memset(out, 0, static_cast<size_t>(c) * sizeof(float));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j)
      out[j] += a[r * c + j];
}

} // namespace

void dense_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
               const float* bias, float* y) {
  if (bias)
    for (int64_t i = 0; i < b; ++i)
      std::memcpy(y + i * out, bias, static_cast<size_t>(out) * sizeof(float));
  if (in == 0) {
    if (!bias)
      std::memset(y, 0, static_cast<size_t>(b * out) * sizeof(float));
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(b),
              static_cast<int>(out), static_cast<int>(in), 1.0f, x, static_cast<int>(in), w,
              static_cast<int>(out), bias ? 1.0f : 0.0f, y, static_cast<int>(out));
}

void dense_backward_cpu(const float* x, int64_t b, int64_t in, const float* w, int64_t out,
                        const float* dy, float* dx, float* dw, float* dbias) {
  if (b == 0) {
    std::memset(dw, 0, static_cast<size_t>(in * out) * sizeof(float));
  } else {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(in),
                static_cast<int>(out), static_cast<int>(b), 1.0f, x, static_cast<int>(in), dy,
                static_cast<int>(out), 0.0f, dw, static_cast<int>(out));
  }
  if (dx) {
    if (out == 0)
      std::memset(dx, 0, static_cast<size_t>(b * in) * sizeof(float));
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(b),
                  static_cast<int>(in), static_cast<int>(out), 1.0f, dy,
                  static_cast<int>(out), w, static_cast<int>(out), 0.0f, dx,
                  static_cast<int>(in));
  }
  if (dbias)
    column_sums(dy, b, out, dbias);
}

} // namespace comb::kernels
