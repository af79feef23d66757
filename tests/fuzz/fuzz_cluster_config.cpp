// libFuzzer target: cluster config TOML (cluster_configs/*.toml) on arbitrary text. Must never
// crash, hang or throw (toml++'s parse errors become named errors); a config that parses has
// nodes with unique names, a data folder each, and finds each of them by name.
#include "node/cluster_config.hpp"

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

using namespace comb::runtime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto c = parse_cluster_config(text, "fuzz.toml", "/base");
  if (!c)
    return 0;
  std::set<std::string> names;
  for (auto& n : c->nodes) {
    if (!names.insert(n.node.name).second || c->find(n.node.name) != &n)
      __builtin_trap();
  }
  return 0;
}
