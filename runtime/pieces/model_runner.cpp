#include "runtime/pieces/model_runner.hpp"
