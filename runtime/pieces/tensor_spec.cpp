#include "runtime/pieces/tensor_spec.hpp"
