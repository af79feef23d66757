#include "node/cluster_config.hpp"

#include "base/cpu_set.hpp"

#include "base/endpoint.hpp"
#include "base/errc.hpp"
#include "runtime/router.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>
#include <set>
#include <sstream>

namespace comb::runtime {

namespace fs = std::filesystem;

const std::vector<std::string>& cluster_roles() {
  static const std::vector<std::string> roles{"state",   "compute", "spooler",
                                              "gateway", "console", "nectar"};
  return roles;
}

bool cluster_node::has_role(const std::string& role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

const cluster_node* cluster_config::find(const std::string& name) const {
  for (auto& n : nodes)
    if (n.node.name == name)
      return &n;
  return nullptr;
}

const cluster_node* cluster_config::owner_of(uint32_t p) const {
  for (auto& n : nodes)
    if (n.has_role("state")
        && std::find(n.node.owned.begin(), n.node.owned.end(), p) != n.node.owned.end())
      return &n;
  return nullptr;
}

caf::expected<node_config> cluster_config::node_config_for(const std::string& name) const {
  const auto* me = find(name);
  if (!me) {
    std::string names;
    for (auto& n : nodes)
      names += (names.empty() ? "" : ", ") + n.node.name;
    return make_error(errc::bad_config, (file.empty() ? std::string{"config"} : file)
                                          + ": no node named '" + name + "' (nodes: " + names
                                          + ")");
  }
  node_config nc = me->node;
  nc.partitions = partitions;
  nc.tls = tls;
  nc.forward_timeout = forward_timeout;
  nc.secret = tls.enabled() ? std::string{} : secret; // with TLS the certificates decide
  if (!me->has_role("state"))
    nc.owned.clear();
  for (auto& n : nodes)
    if (&n != me && n.has_role("state"))
      nc.peers.push_back({n.node.name, endpoint{n.node.host, n.node.port}, n.node.owned});
  if (!me->compute.empty())
    nc.compute = *find(me->compute)->compute_listen; // validated while parsing
  return nc;
}

namespace {

// Reads a whole file; nullopt when it cannot be read.
std::optional<std::string> slurp(const fs::path& p) {
  std::ifstream in{p, std::ios::binary};
  if (!in)
    return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Resolves `p` against the config file's folder (relative paths) into `path`; the problem
// when it is not a readable file, "" otherwise.
std::string readable_file(const std::string& origin, const std::string& p, std::string& path) {
  fs::path full{p};
  if (full.is_relative())
    full = fs::path{origin}.parent_path() / full;
  path = full.string();
  std::error_code ec;
  if (!fs::is_regular_file(full, ec))
    return path + " does not exist or is not a file";
  if (!std::ifstream{full})
    return path + " cannot be read";
  return {};
}

} // namespace

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
  auto unknown_keys = [&](const toml::table& t, const std::set<std::string>& known,
                          const std::string& where) -> caf::error {
    for (auto& [k, v] : t)
      if (!known.count(std::string{k.str()}))
        return bad(
          where, "unknown key '" + std::string{k.str()} + "' (known: " + [&] {
            std::string s;
            for (auto& x : known)
              s += (s.empty() ? "" : ", ") + x;
            return s;
          }() + ")");
    return {};
  };
  for (auto& [k, v] : root)
    if (k.str() != "cluster" && k.str() != "node")
      return bad("top level", "unknown table or key '" + std::string{k.str()}
                                + "' (expected [cluster] and [[node]])");
  cluster_config cfg;
  cfg.file = origin;
  std::optional<uint32_t> cluster_partitions;
  if (auto* c = root["cluster"].as_table()) {
    if (auto err = unknown_keys(
          *c, {"name", "partitions", "secret", "secret_file", "tls", "forward_timeout"},
          "[cluster]"))
      return err;
    if (auto f = (*c)["forward_timeout"]) {
      auto v = f.value<double>();
      if (!v || !(*v > 0) || *v > 3600)
        return bad("[cluster] forward_timeout",
                   "must be a number of seconds, more than 0 and at most 3600");
      cfg.forward_timeout = std::chrono::milliseconds{
        std::max<int64_t>(1, static_cast<int64_t>(*v * 1000))};
    }
    if (auto n = (*c)["name"]) {
      auto s = n.value<std::string>();
      if (!s || s->empty())
        return bad("[cluster] name", "must be a non-empty string");
      cfg.name = *s;
    }
    if (auto p = (*c)["partitions"]) {
      auto v = p.value<int64_t>();
      if (!v || *v < 1 || *v > 1024)
        return bad("[cluster] partitions", "must be an integer in 1..1024");
      cluster_partitions = static_cast<uint32_t>(*v);
    }
    if ((*c)["secret"] && (*c)["secret_file"])
      return bad("[cluster]", "give 'secret' or 'secret_file', not both");
    if (auto s = (*c)["secret"]) {
      auto v = s.value<std::string>();
      if (!v || v->empty())
        return bad("[cluster] secret", "must be a non-empty string");
      cfg.secret = *v;
    }
    if (auto s = (*c)["secret_file"]) {
      auto v = s.value<std::string>();
      if (!v)
        return bad("[cluster] secret_file", "must be a path string");
      std::string path;
      if (auto why = readable_file(origin, *v, path); !why.empty())
        return bad("[cluster] secret_file", why);
      auto body = slurp(path);
      while (body && !body->empty() && (body->back() == '\n' || body->back() == '\r'))
        body->pop_back();
      if (!body || body->empty())
        return bad("[cluster] secret_file", path + " is empty");
      cfg.secret = *body;
    }
    if (auto t = (*c)["tls"]) {
      auto* tt = t.as_table();
      if (!tt)
        return bad("[cluster.tls]", "must be a table with ca, cert and key");
      if (auto err = unknown_keys(*tt, {"ca", "cert", "key"}, "[cluster.tls]"))
        return err;
      tls_config files;
      for (auto [key, out] : {std::pair{"ca", &files.ca_file}, std::pair{"cert", &files.cert_file},
                              std::pair{"key", &files.key_file}}) {
        auto v = (*tt)[key].value<std::string>();
        if (!v)
          return bad(std::string{"[cluster.tls] "} + key, "missing (a path to a PEM file)");
        if (auto why = readable_file(origin, *v, *out); !why.empty())
          return bad(std::string{"[cluster.tls] "} + key, why);
      }
      cfg.tls = files;
    }
  } else if (root.contains("cluster")) {
    return bad("[cluster]", "must be a table");
  }
  auto* nodes = root["node"].as_array();
  if (!nodes || nodes->empty())
    return bad("[[node]]", "no nodes defined (need at least one [[node]] table)");
  std::set<std::string> names;
  std::map<std::string, std::string> addresses; // host:port -> node name
  // Integer 'partitions' per node (the one-node form), remembered to check after the loop.
  std::map<std::string, uint32_t> counts;
  for (size_t i = 0; i < nodes->size(); ++i) {
    auto where = "node #" + std::to_string(i + 1);
    auto* t = (*nodes)[i].as_table();
    if (!t)
      return bad(where, "must be a table");
    if (auto err = unknown_keys(*t,
                                {"name", "listen", "data", "partitions", "durability", "roles",
                                 "compute_listen", "backend", "compute", "nectar_listen",
                                 "console_listen", "cpus"},
                                where))
      return err;
    cluster_node cn;
    auto name = (*t)["name"].value<std::string>();
    if (!name || name->empty())
      return bad(where, "missing 'name'");
    where = "node '" + *name + "'";
    if (!names.insert(*name).second)
      return bad(where, "duplicate node name");
    cn.node.name = *name;
    auto claim_address = [&](const endpoint& ep, const std::string& key) -> caf::error {
      auto [it, fresh] = addresses.emplace(ep.to_string(), *name + "'s " + key);
      if (!fresh)
        return bad(where, "'" + key + "' " + ep.to_string() + " is already " + it->second);
      return {};
    };
    if (auto l = (*t)["listen"]) {
      auto s = l.value<std::string>();
      if (!s)
        return bad(where, "'listen' must be a \"HOST:PORT\" string");
      auto ep = parse_endpoint(*s);
      if (!ep)
        return bad(where, "'listen': " + describe(ep.error()));
      if (auto err = claim_address(*ep, "listen"))
        return err;
      cn.node.listen = true;
      cn.node.host = ep->host;
      cn.node.port = ep->port;
    } else if (nodes->size() > 1) {
      return bad(where, "missing 'listen' (HOST:PORT; other nodes reach this one there)");
    }
    auto data = (*t)["data"].value<std::string>();
    if (!data)
      return bad(where, "missing 'data' (the node's data folder)");
    if (data->empty())
      return bad(where, "'data' is empty (give the node's data folder)");
    fs::path dp{*data};
    if (dp.is_relative() && !base_dir.empty())
      dp = fs::path{base_dir} / dp;
    cn.node.data_dir = dp.string();
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
        const auto& known = cluster_roles();
        if (!s || std::find(known.begin(), known.end(), *s) == known.end())
          return bad(where, "unknown role " + (s ? "'" + *s + "'" : std::string{"(not a string)"})
                              + " in 'roles' (known: state, compute, spooler, gateway, console, "
                                "nectar)");
        if (cn.has_role(*s))
          return bad(where, "role '" + *s + "' given twice in 'roles'");
        cn.roles.push_back(*s);
      }
    }
    if (auto p = (*t)["partitions"]) {
      if (!cn.has_role("state"))
        return bad(where, "'partitions' given but the node has no \"state\" role");
      if (auto* arr = p.as_array()) {
        if (arr->empty())
          return bad(where, "'partitions' is an empty list");
        for (auto& e : *arr) {
          auto v = e.value<int64_t>();
          if (!v || *v < 0 || *v > 1023)
            return bad(where, "'partitions' entries must be partition numbers (integers 0..1023)");
          cn.node.owned.push_back(static_cast<uint32_t>(*v));
        }
      } else {
        auto v = p.value<int64_t>();
        if (!v || *v < 1 || *v > 1024)
          return bad(where, "'partitions' must be a list of partition numbers, or (one state "
                            "node) an integer in 1..1024");
        counts[*name] = static_cast<uint32_t>(*v);
      }
    }
    if (auto c = (*t)["compute_listen"]) {
      auto s = c.value<std::string>();
      if (!s)
        return bad(where, "'compute_listen' must be a \"HOST:PORT\" string");
      auto ep = parse_endpoint(*s);
      if (!ep)
        return bad(where, "'compute_listen': " + describe(ep.error()));
      if (auto err = claim_address(*ep, "compute_listen"))
        return err;
      cn.compute_listen = *ep;
    }
    if (auto c = (*t)["cpus"]) {
      auto s = c.value<std::string>();
      if (!s)
        return bad(where, "'cpus' must be a string of CPUs such as \"0-3,8\"");
      auto cpus = parse_cpu_list(*s);
      if (!cpus)
        return bad(where, "'cpus': " + describe(cpus.error()));
      cn.cpus = std::move(*cpus);
    }
    if (auto b = (*t)["backend"]) {
      auto s = b.value<std::string>();
      if (!s || (*s != "cpu" && *s != "cuda" && *s != "auto"))
        return bad(where, "'backend' must be \"cpu\", \"cuda\" or \"auto\"");
      cn.backend = *s;
    }
    if (cn.has_role("compute") && !cn.compute_listen)
      return bad(where, "role \"compute\" needs 'compute_listen' (HOST:PORT of its process)");
    if (!cn.has_role("compute") && (cn.compute_listen || (*t)["backend"]))
      return bad(where, "'compute_listen'/'backend' given but the node has no \"compute\" role");
    if (auto c = (*t)["compute"]) {
      auto s = c.value<std::string>();
      if (!s || s->empty())
        return bad(where, "'compute' must name a compute node");
      cn.compute = *s;
    }
    // The apps' HTTP servers `comb node` starts for the "nectar" and "console" roles.
    for (auto [key, role, slot] : {std::tuple{"nectar_listen", "nectar", &cn.nectar_listen},
                                   std::tuple{"console_listen", "console", &cn.console_listen}}) {
      if (auto l = (*t)[key]) {
        auto s = l.value<std::string>();
        if (!s)
          return bad(where, "'" + std::string{key} + "' must be a \"HOST:PORT\" string");
        auto ep = parse_endpoint(*s);
        if (!ep)
          return bad(where, "'" + std::string{key} + "': " + describe(ep.error()));
        if (auto err = claim_address(*ep, key))
          return err;
        *slot = *ep;
      }
      if (cn.has_role(role) && !*slot)
        return bad(where, "role \"" + std::string{role} + "\" needs '" + key
                            + "' (HOST:PORT of its HTTP server)");
      if (!cn.has_role(role) && *slot)
        return bad(where,
                   "'" + std::string{key} + "' given but the node has no \"" + role + "\" role");
    }
    if (cn.has_role("console") && !cn.has_role("spooler"))
      return bad(where, "role \"console\" needs the \"spooler\" role on the same node (the "
                        "console reads the SQL store it spools into)");
    cfg.nodes.push_back(std::move(cn));
  }

  // Placement: every partition on exactly one state node.
  std::vector<cluster_node*> state_nodes;
  for (auto& n : cfg.nodes)
    if (n.has_role("state"))
      state_nodes.push_back(&n);
  if (state_nodes.empty())
    return bad("[[node]]", "no node has the \"state\" role (nothing would run procedures)");
  if (!counts.empty()) {
    if (state_nodes.size() > 1)
      return bad("node '" + counts.begin()->first + "'",
                 "an integer 'partitions' only works with one state node; give the list of "
                 "partition numbers it runs");
    if (cluster_partitions && *cluster_partitions != counts.begin()->second)
      return bad("node '" + counts.begin()->first + "'",
                 "'partitions' = " + std::to_string(counts.begin()->second)
                   + " differs from [cluster] partitions = " + std::to_string(*cluster_partitions));
    cluster_partitions = counts.begin()->second;
  }
  if (state_nodes.size() == 1 && state_nodes[0]->node.owned.empty()) {
    cfg.partitions = cluster_partitions.value_or(4);
    for (uint32_t p = 0; p < cfg.partitions; ++p)
      state_nodes[0]->node.owned.push_back(p);
  } else {
    if (!cluster_partitions)
      return bad("[cluster] partitions",
                 "missing (the cluster's partition count; needed with several state nodes)");
    cfg.partitions = *cluster_partitions;
  }
  std::map<uint32_t, std::string> placed;
  for (auto* n : state_nodes) {
    if (n->node.owned.empty())
      return bad("node '" + n->node.name + "'",
                 "missing 'partitions' (the list of partition numbers this state node runs)");
    for (auto p : n->node.owned) {
      if (p >= cfg.partitions)
        return bad("node '" + n->node.name + "'",
                   "partition " + std::to_string(p) + " is out of range (the cluster has "
                     + std::to_string(cfg.partitions) + " partitions: 0.."
                     + std::to_string(cfg.partitions - 1) + ")");
      auto [it, fresh] = placed.emplace(p, n->node.name);
      if (!fresh)
        return bad("node '" + n->node.name + "'", "partition " + std::to_string(p)
                                                    + " is placed twice (also on node '"
                                                    + it->second + "')");
    }
    std::sort(n->node.owned.begin(), n->node.owned.end());
    n->node.partitions = cfg.partitions;
  }
  std::vector<uint32_t> missing;
  for (uint32_t p = 0; p < cfg.partitions; ++p)
    if (!placed.count(p))
      missing.push_back(p);
  if (!missing.empty())
    return bad("[[node]] partitions", "partition(s) " + describe_partitions(missing)
                                        + " placed on no node (every partition 0.."
                                        + std::to_string(cfg.partitions - 1)
                                        + " needs exactly one state node)");
  for (auto& n : cfg.nodes) {
    if (n.compute.empty())
      continue;
    auto* c = cfg.find(n.compute);
    if (!c)
      return bad("node '" + n.node.name + "'",
                 "'compute' names '" + n.compute + "', which is no node of this cluster");
    if (!c->has_role("compute"))
      return bad("node '" + n.node.name + "'",
                 "'compute' names '" + n.compute + "', which has no \"compute\" role");
  }
  return cfg;
}

caf::expected<cluster_config> load_cluster_config(const std::string& path,
                                                  const std::string& base_dir) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    return make_error(errc::bad_config, path + ": cannot read the cluster config: no such file");
  if (fs::is_directory(path, ec))
    return make_error(errc::bad_config,
                      path + ": cannot read the cluster config: it is a folder, not a TOML file");
  errno = 0;
  auto text = slurp(path);
  if (!text)
    return make_error(errc::bad_config, path + ": cannot read the cluster config: "
                                          + (errno ? std::strerror(errno) : "open failed"));
  return parse_cluster_config(*text, path, base_dir);
}

} // namespace comb::runtime
