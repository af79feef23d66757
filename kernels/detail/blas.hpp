// comb::kernels::detail::sgemm: OpenBLAS's row-major sgemm for Comb's CPU ops. It first sends
// the CPU pool's idle workers to sleep (detail::park_workers), since their spinning would slow
// OpenBLAS's own threads on the same cores: every sgemm of the CPU ops goes through here, so
// no op has to remember that. Thread-safe as OpenBLAS is.
//
// Split mode (set_sgemm_split, or COMB_SGEMM_SPLIT=1 in the environment): each sgemm runs as
// parts of C's rows (or columns) on the CPU pool, each part a single-threaded OpenBLAS call,
// taken by whichever pool thread is free. OpenBLAS's own threads work in lockstep: when the
// machine preempts one of them, the others spin in sched_yield until it is back. A process
// that shares its cores with another busy one (`comb compute` beside a node on a small
// machine) lost a third of its CPU that way; split, a preempted thread holds back one part and
// the free thread takes the rest.
#pragma once

#include <cstdint>

namespace comb::kernels::detail {

/// C = alpha * op(A) * op(B) + beta * C, all row-major; op(X) is X or its transpose. op(A) is
/// m x k, op(B) is k x n, C is m x n.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

/// Whether sgemm runs split (see above); the first call reads COMB_SGEMM_SPLIT.
bool sgemm_split();

/// Turns split mode on or off for the process; sets OpenBLAS's thread count to match (1 when
/// on, the pool's otherwise). Call between sgemms, not during one.
void set_sgemm_split(bool on);

} // namespace comb::kernels::detail
