#include "runtime/procedure_registry.hpp"

#include "base/errc.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>

namespace comb::runtime {

bool procedure_def::allows(std::string_view role) const {
  for (auto& r : opts.roles)
    if (r == "*" || r == role)
      return true;
  return false;
}

void procedure_registry::add(std::string name, procedure_fn fn, procedure_options opts) {
  auto key = name;
  procs_[key] = procedure_def{std::move(name), std::move(fn), std::move(opts)};
}

void procedure_registry::add_table(std::string name, storage::table_kind kind) {
  auto i = std::find_if(tables_.begin(), tables_.end(),
                        [&](const table_decl& t) { return t.name == name; });
  if (i == tables_.end())
    tables_.push_back({std::move(name), kind});
  else
    i->kind = kind;
}

void procedure_registry::add_partitioned_table(std::string name, storage::table_kind kind) {
  auto key = name;
  add_table(std::move(name), kind);
  for (auto& t : tables_)
    if (t.name == key)
      t.partitioned = true;
}

void procedure_registry::mark_private(std::string_view table, std::vector<std::string> fields,
                                      bool keys) {
  auto i = std::find_if(tables_.begin(), tables_.end(),
                        [&](const table_decl& t) { return t.name == table; });
  if (i == tables_.end()) {
    add_table(std::string{table});
    i = tables_.end() - 1;
  }
  i->private_fields.insert(i->private_fields.end(), fields.begin(), fields.end());
  i->private_keys = i->private_keys || keys;
}

bool procedure_registry::is_partitioned(std::string_view table) const {
  for (auto& t : tables_)
    if (t.name == table)
      return t.partitioned;
  return false;
}

const procedure_def* procedure_registry::find(std::string_view name) const {
  auto i = procs_.find(name);
  return i == procs_.end() ? nullptr : &i->second;
}

std::vector<std::string> procedure_registry::names() const {
  std::vector<std::string> out;
  for (auto& [k, v] : procs_)
    out.push_back(k);
  return out;
}

uint64_t partition_hash(std::string_view key) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

caf::expected<uint32_t> procedure_registry::partition_of(const procedure_def& def,
                                                         const nlohmann::json& args,
                                                         uint32_t n) const {
  if (def.opts.partition_by.empty() || n <= 1)
    return 0u;
  if (!args.is_object())
    return make_error(errc::invalid_argument, def.name + ": arguments must be a JSON object");
  auto i = args.find(def.opts.partition_by);
  if (i == args.end())
    return make_error(errc::invalid_argument,
                      def.name + ": missing argument '" + def.opts.partition_by + "'");
  uint64_t h = i->is_string() ? partition_hash(i->get_ref<const std::string&>())
                              : partition_hash(i->dump());
  return static_cast<uint32_t>(h % n);
}

uint64_t next_execution_id() {
  static std::atomic<uint64_t> last{0};
  auto now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  auto prev = last.load(std::memory_order_relaxed);
  for (;;) {
    auto next = std::max(prev + 1, now);
    if (last.compare_exchange_weak(prev, next, std::memory_order_relaxed))
      return next;
  }
}

} // namespace comb::runtime
