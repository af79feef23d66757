// comb::kernels::reference_backend: the naive function table.
#include "kernels/reference_backend.hpp"

namespace comb::kernels {

namespace {

// Every op's naive version, <op>_ref, in COMB_KERNEL_OP_LIST's order.
const detail::host_ops naive_ops = {
#define COMB_REF_OP(name) name##_ref,
  COMB_KERNEL_OP_LIST(COMB_REF_OP)
#undef COMB_REF_OP
};

} // namespace

reference_backend::reference_backend() : host_backend("reference", naive_ops) {
}

} // namespace comb::kernels
