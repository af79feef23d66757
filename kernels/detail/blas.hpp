// comb::kernels::detail::sgemm: OpenBLAS's row-major sgemm for Comb's CPU ops. It first sends
// the CPU pool's idle workers to sleep (detail::park_workers), since their spinning would slow
// OpenBLAS's own threads on the same cores: every sgemm of the CPU ops goes through here, so
// no op has to remember that. Thread-safe as OpenBLAS is.
#pragma once

#include <cstdint>

namespace comb::kernels::detail {

/// C = alpha * op(A) * op(B) + beta * C, all row-major; op(X) is X or its transpose. op(A) is
/// m x k, op(B) is k x n, C is m x n.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

} // namespace comb::kernels::detail
