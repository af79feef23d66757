// `comb demo`, `comb node`, `comb call` (being written).
#include "cli/commands.hpp"

namespace comb::cli {
void add_node_commands(CLI::App& app) {}
} // namespace comb::cli
