#include "actors/compute_actor.hpp"

#include "runtime/pieces/builtin_tasks.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/model_digest.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <deque>
#include <optional>
#include <set>

namespace comb::actors {

using runtime::piece_kind;
using clock_type = std::chrono::steady_clock;

caf::expected<std::pair<std::string, batch_policy>> parse_batch_policy(std::string_view s) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::bad_config, "batch policy '" + std::string{s} + "': " + why
                                          + " (expected MODEL=SIZE:DELAY_MS, e.g. checksum=8:5)");
  };
  auto eq = s.find('=');
  auto colon = s.find(':', eq == std::string_view::npos ? 0 : eq);
  if (eq == std::string_view::npos || eq == 0 || colon == std::string_view::npos)
    return bad("missing '=' or ':'");
  batch_policy p;
  try {
    size_t used = 0;
    auto size_str = std::string{s.substr(eq + 1, colon - eq - 1)};
    auto delay_str = std::string{s.substr(colon + 1)};
    auto size = std::stoul(size_str, &used);
    if (used != size_str.size() || size == 0 || size > 1000000)
      return bad("SIZE must be an integer in [1, 1000000]");
    auto delay = std::stoul(delay_str, &used);
    if (used != delay_str.size() || delay > 3600000)
      return bad("DELAY_MS must be an integer in [0, 3600000]");
    p.max_batch = static_cast<uint32_t>(size);
    p.max_delay = std::chrono::milliseconds{delay};
  } catch (const std::exception&) {
    return bad("SIZE and DELAY_MS must be integers");
  }
  return std::pair<std::string, batch_policy>{std::string{s.substr(0, eq)}, p};
}

caf::expected<std::vector<piece_kind>> parse_priority(std::string_view s) {
  std::vector<piece_kind> out;
  while (!s.empty()) {
    auto comma = s.find(',');
    auto item = s.substr(0, comma);
    auto k = runtime::parse_piece_kind(item);
    if (!k)
      return make_error(errc::bad_config,
                        "priority '" + std::string{s} + "': " + describe(k.error()));
    if (std::find(out.begin(), out.end(), *k) == out.end())
      out.push_back(*k);
    if (comma == std::string_view::npos)
      break;
    s.remove_prefix(comma + 1);
  }
  for (auto k : {piece_kind::load_model, piece_kind::infer, piece_kind::train})
    if (std::find(out.begin(), out.end(), k) == out.end())
      out.push_back(k);
  return out;
}

namespace {

using runtime::activate_atom;
using runtime::models_atom;
using runtime::piece_atom;
using runtime::stats_atom;
using runtime::task_result;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

struct loaded_model {
  std::vector<char> bytes;
  std::string digest;
  uint64_t seed = 0;
};

struct model_entry {
  uint32_t active = 0;
  std::map<uint32_t, loaded_model> versions;
};

struct waiting_task {
  runtime::pooled_task task;
  caf::typed_response_promise<task_result> rp;
  clock_type::time_point enqueued;
};

struct compute_state {
  compute_config cfg;
  std::optional<runtime::piece_pool> pool;
  std::map<std::string, model_entry> models;
  /// Whole tasks waiting for their batch, by (kind, model).
  std::map<std::pair<uint8_t, std::string>, std::deque<waiting_task>> queues;
  std::optional<clock_type::time_point> next_tick;
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t expired = 0;
  uint64_t rejected = 0;
  uint64_t batches = 0;
  std::vector<std::string> run_order;
  static inline const char* name = "comb.compute";
};

using compute_actor_t = caf::stateful_actor<compute_state>;

const batch_policy& policy_of(compute_state& st, const std::string& model) {
  auto i = st.cfg.batching.find(model);
  return i != st.cfg.batching.end() ? i->second : st.cfg.default_batching;
}

size_t rank_of(const compute_state& st, uint8_t kind) {
  auto i = std::find(st.cfg.priority.begin(), st.cfg.priority.end(), static_cast<piece_kind>(kind));
  return static_cast<size_t>(i - st.cfg.priority.begin());
}

std::string task_where(const runtime::piece& p) {
  return "piece " + std::to_string(p.piece_no) + "/" + std::to_string(p.piece_count) + " of task "
         + std::to_string(p.task_id);
}

/// Picks the version an infer/train task runs with; an unknown model is an error.
caf::expected<uint32_t> resolve_model(compute_state& st, const runtime::piece& p) {
  if (runtime::is_builtin_model(p.model_id)) {
    if (p.model_version > 1)
      return make_error(errc::bad_model, task_where(p) + ": built-in model '" + p.model_id
                                           + "' has only version 1, not "
                                           + std::to_string(p.model_version));
    return 1u;
  }
  auto i = st.models.find(p.model_id);
  if (i == st.models.end() || i->second.versions.empty())
    return make_error(errc::bad_model, task_where(p) + ": unknown model '" + p.model_id
                                         + "' (not built in and not loaded)");
  if (p.model_version == 0) {
    if (i->second.active == 0)
      return make_error(errc::bad_model,
                        task_where(p) + ": model '" + p.model_id + "' has no active version");
    return i->second.active;
  }
  if (i->second.versions.count(p.model_version) == 0)
    return make_error(errc::bad_model, task_where(p) + ": model '" + p.model_id
                                         + "' has no loaded version "
                                         + std::to_string(p.model_version));
  return p.model_version;
}

/// Runs one whole task; fills everything but batch_size.
caf::expected<task_result> run_task(compute_state& st, runtime::pooled_task& t) {
  task_result r;
  r.task_id = t.task_id;
  r.complete = true;
  r.kind = static_cast<uint8_t>(t.kind);
  r.model = t.model_id;
  r.model_version = t.model_version;
  r.input_bytes = t.total_bytes;
  if (t.kind == piece_kind::load_model) {
    auto digest = runtime::model_digest(t.chunks);
    auto& entry = st.models[t.model_id];
    auto i = entry.versions.find(t.model_version);
    if (i != entry.versions.end() && i->second.digest != digest)
      return make_error(errc::already_exists, "task " + std::to_string(t.task_id) + ": model '"
                                                + t.model_id + "' version "
                                                + std::to_string(t.model_version)
                                                + " is already loaded with digest "
                                                + i->second.digest + ", not " + digest);
    if (i == entry.versions.end()) {
      loaded_model m;
      m.bytes = t.flatten();
      m.digest = digest;
      m.seed = std::stoull(digest.substr(0, 16), nullptr, 16);
      entry.versions.emplace(t.model_version, std::move(m));
    }
    if (entry.active == 0)
      entry.active = t.model_version;
    r.model_digest = digest;
    r.output.assign(digest.begin(), digest.end());
    return r;
  }
  if (runtime::is_builtin_model(t.model_id)) {
    auto out = runtime::run_builtin(t.model_id, t.chunks);
    if (!out)
      return make_error(errc::invalid_argument,
                        "task " + std::to_string(t.task_id) + ": " + describe(out.error()));
    r.model_digest = "builtin";
    r.output = std::move(*out);
    return r;
  }
  auto i = st.models.find(t.model_id);
  if (i == st.models.end() || i->second.versions.count(t.model_version) == 0)
    return make_error(errc::bad_model, "task " + std::to_string(t.task_id) + ": model '"
                                         + t.model_id + "' version "
                                         + std::to_string(t.model_version) + " is not loaded");
  // Until the kernels land, a loaded model's "inference" and "training step" is a checksum
  // keyed by the model's digest: the output depends on the exact version that ran.
  const auto& m = i->second.versions.at(t.model_version);
  r.model_digest = m.digest;
  r.output = runtime::checksum_output(t.chunks, m.seed);
  return r;
}

void schedule_tick(compute_actor_t* self, clock_type::time_point at) {
  auto& st = self->state;
  if (st.next_tick && *st.next_tick <= at)
    return;
  st.next_tick = at;
  auto delay = std::chrono::duration_cast<std::chrono::microseconds>(at - clock_type::now());
  if (delay < std::chrono::microseconds{500})
    delay = std::chrono::microseconds{500};
  self->delayed_send(self, delay, tick_atom::value);
}

/// Runs every batch that is ready, highest priority first, then arms the timer.
void drain(compute_actor_t* self) {
  auto& st = self->state;
  for (;;) {
    auto now = clock_type::now();
    // A model whose oldest waiting task reached its deadline flushes all of its queues, in
    // priority order: this is where a higher-priority purpose overtakes a lower one.
    std::set<std::string> due;
    for (const auto& [key, q] : st.queues)
      if (!q.empty() && q.front().enqueued + policy_of(st, key.second).max_delay <= now)
        due.insert(key.second);
    auto best = st.queues.end();
    for (auto i = st.queues.begin(); i != st.queues.end(); ++i) {
      if (i->second.empty())
        continue;
      const auto& pol = policy_of(st, i->first.second);
      bool ready = i->second.size() >= pol.max_batch || due.count(i->first.second) > 0;
      if (!ready)
        continue;
      if (best == st.queues.end() || rank_of(st, i->first.first) < rank_of(st, best->first.first)
          || (rank_of(st, i->first.first) == rank_of(st, best->first.first)
              && i->second.front().enqueued < best->second.front().enqueued))
        best = i;
    }
    if (best == st.queues.end())
      break;
    auto& q = best->second;
    auto n = std::min<size_t>(q.size(), policy_of(st, best->first.second).max_batch);
    std::vector<waiting_task> batch;
    for (size_t k = 0; k < n; ++k) {
      batch.push_back(std::move(q.front()));
      q.pop_front();
    }
    ++st.batches;
    for (auto& w : batch) {
      st.run_order.push_back(runtime::to_string(w.task.kind) + ":"
                             + std::to_string(w.task.task_id));
      if (st.run_order.size() > 1024)
        st.run_order.erase(st.run_order.begin(), st.run_order.begin() + 512);
      auto r = run_task(st, w.task);
      if (r) {
        ++st.completed;
        r->batch_size = static_cast<uint32_t>(n);
        w.rp.deliver(std::move(*r));
      } else {
        ++st.failed;
        w.rp.deliver(r.error());
      }
    }
  }
  std::optional<clock_type::time_point> next = st.pool->next_expiry();
  for (auto& [key, q] : st.queues)
    if (!q.empty()) {
      auto at = q.front().enqueued + policy_of(st, key.second).max_delay;
      if (!next || at < *next)
        next = at;
    }
  if (next)
    schedule_tick(self, *next);
}

caf::behavior compute_actor(compute_actor_t* self, compute_config cfg) {
  self->state.cfg = std::move(cfg);
  self->state.pool.emplace(self->state.cfg.pool);
  return {
    [=](piece_atom, std::vector<char>& bytes) -> caf::result<task_result> {
      auto& st = self->state;
      auto p = runtime::decode_piece(std::move(bytes));
      if (!p) {
        ++st.rejected;
        return p.error();
      }
      if (p->kind == piece_kind::load_model) {
        if (p->model_version == 0 || runtime::is_builtin_model(p->model_id)
            || p->model_id.empty()) {
          ++st.rejected;
          return make_error(errc::invalid_argument,
                            task_where(*p)
                              + ": load_model needs a model name that is not "
                                "built in and a version of at least 1");
        }
      } else if (auto known = st.pool->model_version_of(p->task_id)) {
        p->model_version = *known;
      } else if (!st.pool->contains(p->task_id)) {
        auto v = resolve_model(st, *p);
        if (!v) {
          ++st.rejected;
          return v.error();
        }
        p->model_version = *v;
      }
      auto task_id = p->task_id;
      auto added = st.pool->add(std::move(*p));
      if (!added) {
        ++st.rejected;
        return added.error();
      }
      if (!*added) {
        if (auto at = st.pool->next_expiry())
          schedule_tick(self, *at);
        task_result ack;
        ack.task_id = task_id;
        return ack;
      }
      auto rp = self->make_response_promise<task_result>();
      auto& task = **added;
      auto key = std::make_pair(static_cast<uint8_t>(task.kind), task.model_id);
      st.queues[key].push_back(waiting_task{std::move(task), rp, clock_type::now()});
      drain(self);
      return rp;
    },
    [=](tick_atom) {
      auto& st = self->state;
      st.next_tick.reset();
      st.expired += st.pool->expire().size();
      drain(self);
    },
    [=](activate_atom, const std::string& model, uint32_t version) -> caf::result<uint32_t> {
      auto& st = self->state;
      auto i = st.models.find(model);
      if (i == st.models.end() || i->second.versions.count(version) == 0)
        return make_error(errc::bad_model, "cannot activate model '" + model + "' version "
                                             + std::to_string(version)
                                             + ": that version is not loaded");
      auto previous = i->second.active;
      i->second.active = version;
      return previous;
    },
    [=](models_atom) {
      auto& st = self->state;
      auto out = nlohmann::json::array();
      for (const auto& [name, e] : st.models)
        for (const auto& [v, m] : e.versions)
          out.push_back({{"model", name},
                         {"version", v},
                         {"digest", m.digest},
                         {"bytes", m.bytes.size()},
                         {"active", e.active == v}});
      return out.dump();
    },
    [=](stats_atom) {
      auto& st = self->state;
      nlohmann::json j{{"backend", st.cfg.backend},
                       {"incomplete_tasks", st.pool->incomplete_tasks()},
                       {"reserved_bytes", st.pool->reserved_bytes()},
                       {"held_bytes", st.pool->held_bytes()},
                       {"memory_limit", st.pool->config().memory_limit},
                       {"completed", st.completed},
                       {"failed", st.failed},
                       {"expired", st.expired},
                       {"rejected", st.rejected},
                       {"batches", st.batches},
                       {"run_order", st.run_order}};
      return j.dump();
    },
  };
}

} // namespace

caf::actor spawn_compute_actor(caf::actor_system& sys, compute_config cfg) {
  return sys.spawn(compute_actor, std::move(cfg));
}

} // namespace comb::actors
