#include "node/cluster_config.hpp"

#include "base/endpoint.hpp"
#include "base/errc.hpp"

#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace comb::runtime {

const cluster_node* cluster_config::find(const std::string& name) const {
  for (auto& n : nodes)
    if (n.node.name == name)
      return &n;
  return nullptr;
}

caf::expected<cluster_config> parse_cluster_config(const std::string& text,
                                                   const std::string& origin,
                                                   const std::string& base_dir) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
       << e.description();
    return make_error(errc::bad_config, os.str());
  }
  auto bad = [&](const std::string& where, const std::string& what) {
    return make_error(errc::bad_config, origin + ": " + where + ": " + what);
  };
  cluster_config cfg;
  if (auto* c = root["cluster"].as_table()) {
    if (auto n = (*c)["name"].value<std::string>())
      cfg.name = *n;
  }
  auto* nodes = root["node"].as_array();
  if (!nodes || nodes->empty())
    return bad("[[node]]", "no nodes defined (need at least one [[node]] table)");
  std::set<std::string> names;
  for (size_t i = 0; i < nodes->size(); ++i) {
    auto where = "node #" + std::to_string(i + 1);
    auto* t = (*nodes)[i].as_table();
    if (!t)
      return bad(where, "must be a table");
    cluster_node cn;
    for (auto& [k, v] : *t) {
      static const std::set<std::string> known{"name",          "listen",     "data",
                                               "partitions",    "durability", "roles",
                                               "compute_listen"};
      if (!known.count(std::string{k.str()}))
        return bad(where, "unknown key '" + std::string{k.str()} + "'");
    }
    auto name = (*t)["name"].value<std::string>();
    if (!name || name->empty())
      return bad(where, "missing 'name'");
    where = "node '" + *name + "'";
    if (!names.insert(*name).second)
      return bad(where, "duplicate node name");
    cn.node.name = *name;
    if (auto l = (*t)["listen"]) {
      auto s = l.value<std::string>();
      if (!s)
        return bad(where, "'listen' must be a \"HOST:PORT\" string");
      auto ep = parse_endpoint(*s);
      if (!ep)
        return bad(where, "'listen': " + describe(ep.error()));
      cn.node.listen = true;
      cn.node.host = ep->host;
      cn.node.port = ep->port;
    }
    auto data = (*t)["data"].value<std::string>();
    if (!data)
      return bad(where, "missing 'data' (the node's data folder)");
    std::filesystem::path dp{*data};
    if (dp.is_relative() && !base_dir.empty())
      dp = std::filesystem::path{base_dir} / dp;
    cn.node.data_dir = dp.string();
    if (auto p = (*t)["partitions"]) {
      auto v = p.value<int64_t>();
      if (!v || *v < 1 || *v > 1024)
        return bad(where, "'partitions' must be an integer in 1..1024");
      cn.node.partitions = static_cast<uint32_t>(*v);
    }
    if (auto d = (*t)["durability"]) {
      auto s = d.value<std::string>();
      if (!s || !storage::parse_durability(*s, cn.node.durability))
        return bad(where, "'durability' must be \"sync\" or \"async\"");
    }
    if (auto r = (*t)["roles"]) {
      auto* arr = r.as_array();
      if (!arr)
        return bad(where, "'roles' must be an array of strings");
      cn.roles.clear();
      for (auto& e : *arr) {
        auto s = e.value<std::string>();
        static const std::set<std::string> roles{"state", "compute", "spooler"};
        if (!s || !roles.count(*s))
          return bad(where, "'roles' entries must be \"state\", \"compute\" or \"spooler\"");
        cn.roles.push_back(*s);
      }
    }
    if (auto c = (*t)["compute_listen"].value<std::string>())
      cn.compute_listen = *c;
    cfg.nodes.push_back(std::move(cn));
  }
  return cfg;
}

caf::expected<cluster_config> load_cluster_config(const std::string& path,
                                                  const std::string& base_dir) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(errc::bad_config, path + ": cannot read the cluster config");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_cluster_config(ss.str(), path, base_dir);
}

} // namespace comb::runtime
