#include "runtime/pieces/kernel_runners.hpp"

namespace comb::runtime {
void register_kernel_runners() {
}
} // namespace comb::runtime
