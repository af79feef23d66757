// comb::actors::compute_actor: pools pieces into whole tasks, batches them per model by the
// batch policy, runs built-in tasks and raw (checksum) versions itself and sends batches of a
// runner's model version to its executors (one per backend, each on its own thread), loads
// and unloads model versions, and replies with results that name the version that ran.
#include "actors/compute_actor.hpp"

#include "actors/executor.hpp"
#include "runtime/pieces/stage_trace.hpp"
#include "base/errc.hpp"
#include "kernels/cpu_backend.hpp"
#include "runtime/pieces/blob_file_pieces.hpp"
#include "runtime/pieces/builtin_tasks.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "runtime/pieces/local_link.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/model_runner.hpp"
#include "runtime/pieces/shm_pieces.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <optional>
#include <set>
#include <unordered_map>

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
using runtime::blob_piece_atom;
using runtime::shm_piece_atom;
using runtime::task_result;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
/// Lets go of blob segment files no task read for a while (their descriptors keep retired
/// segments' disk space).
using blob_sweep_atom = caf::atom_constant<caf::atom("blobsweep")>;
constexpr auto blob_file_idle = std::chrono::seconds{5};

/// A loaded model version: opaque bytes run as the checksum model ("raw"), or a model of a
/// runner's kind held by every executor.
struct version_entry {
  std::string digest;
  /// "raw" or the runner's kind.
  std::string kind = "raw";
  /// Raw versions only: the bytes and the checksum's seed (from the digest).
  std::vector<char> bytes;
  uint64_t seed = 0;
  uint64_t file_bytes = 0;
  /// Bytes the version holds on each executor (0 for raw versions).
  uint64_t memory_bytes = 0;
  /// Tasks of this version that are pooled, queued or running.
  uint64_t pending = 0;
  /// When it was loaded or last ran a task (a superseded version stays unload_grace after).
  std::chrono::steady_clock::time_point last_used = std::chrono::steady_clock::now();
  /// Loaded by a reload for tasks pinned to it that have not come yet: kept (up to
  /// reload_hold) until one of them has run.
  bool awaiting_tasks = false;
  uint64_t tasks_run = 0;
  /// A newer version was activated: unloaded once `pending` reaches 0.
  bool superseded = false;
  bool on_executors() const { return kind != "raw"; }
};

struct model_entry {
  uint32_t active = 0;
  std::map<uint32_t, version_entry> versions;
};

/// Where the result of a task that came over a local link goes.
struct link_sink {
  std::shared_ptr<runtime::local_link_peer> peer;
  uint64_t key = 0;
  uint32_t gen = 0;
  uint32_t idx = 0;
};

struct waiting_task {
  runtime::pooled_task task;
  caf::typed_response_promise<task_result> rp;
  clock_type::time_point enqueued;
  /// Set for a task from a local link: its result goes there, not to `rp`.
  std::optional<link_sink> sink;
};

struct executor_slot {
  caf::actor actor;
  std::string backend;
  /// Runs on the CPU (the kernels' pool).
  bool cpu = false;
  /// Batches sent and not answered yet.
  uint32_t outstanding = 0;
  uint64_t batches = 0;
  uint64_t tasks = 0;
  uint64_t busy_us = 0;
};

/// A load_model task of a runner's kind, waiting for every executor to answer.
struct pending_load {
  std::string digest;
  std::string kind;
  uint64_t file_bytes = 0;
  size_t remaining = 0;
  std::vector<size_t> loaded_on;
  uint64_t memory_bytes = 0;
  caf::error first_error;
  /// Every load_model task of this version waiting for the outcome.
  std::vector<waiting_task> waiting;
};

struct compute_state {
  compute_config cfg;
  std::optional<runtime::piece_pool> pool;
  std::map<std::string, model_entry> models;
  std::vector<executor_slot> executors;
  std::map<std::pair<std::string, uint32_t>, pending_load> loading;
  /// The model version of every pooled, queued or running task of a loaded model.
  std::unordered_map<uint64_t, std::pair<std::string, uint32_t>> task_versions;
  /// Whole tasks waiting for their batch, by (kind, model).
  std::map<std::pair<uint8_t, std::string>, std::deque<waiting_task>> queues;
  std::optional<clock_type::time_point> next_tick;
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t expired = 0;
  uint64_t rejected = 0;
  uint64_t batches = 0;
  std::vector<std::string> run_order;
  std::vector<std::string> unloaded;
  /// Segments of shared-memory pieces from function actors on this host.
  runtime::shm_reader shm;
  uint64_t shm_tasks = 0;
  uint64_t blob_file_tasks = 0;
  /// Blob segment files mapped once and read in place (no copy of a task's bytes).
  runtime::blob_file_reader blob_files;
  bool blob_sweep_armed = false;
  /// Input buffers of finished executor batches, kept to read the next tasks' bytes into
  /// (blob ranges read for the first time; shared memory is read in place): their pages are
  /// mapped already and are not zeroed again.
  std::vector<std::vector<char>> spare_buffers;
  uint64_t buffers_reused = 0;
  /// When an executor last answered a batch (wake_pool_early).
  clock_type::time_point last_batch_end;
  uint64_t early_wakes = 0;
  /// The local link's listener (null: none) and the tasks that came over it.
  std::shared_ptr<runtime::local_link_server> link;
  uint64_t link_tasks = 0;
  static inline const char* name = "comb.compute";
};

/// Buffers kept for reuse: those of a whole task's bytes (callers split inputs into calls of
/// about 1 MiB: "as many images as fit in 1 MiB"), as many as tasks are usually in flight
/// (a dispatcher keeps 8 at once), and at most 32 MiB in all.
constexpr size_t max_spare_buffers = 8;
constexpr size_t max_spare_total = size_t{32} << 20;
constexpr size_t min_spare_bytes = size_t{64} << 10;

/// A kept buffer with room for `size` bytes (the smallest such), or an empty one.
std::vector<char> take_spare(compute_state& st, size_t size) {
  auto best = st.spare_buffers.end();
  for (auto i = st.spare_buffers.begin(); i != st.spare_buffers.end(); ++i)
    if (i->capacity() >= size
        && (best == st.spare_buffers.end() || i->capacity() < best->capacity()))
      best = i;
  if (best == st.spare_buffers.end())
    return {};
  auto out = std::move(*best);
  st.spare_buffers.erase(best);
  return out;
}

/// Keeps `buf` for a later task's bytes when it is worth it and there is room (a full set
/// gives its smallest buffer up for a larger one).
void give_spare(compute_state& st, std::vector<char>&& buf) {
  if (buf.capacity() < min_spare_bytes || buf.capacity() > max_spare_total)
    return;
  auto total = buf.capacity();
  for (const auto& b : st.spare_buffers)
    total += b.capacity();
  while ((st.spare_buffers.size() >= max_spare_buffers || total > max_spare_total)
         && !st.spare_buffers.empty()) {
    auto smallest = std::min_element(st.spare_buffers.begin(), st.spare_buffers.end(),
                                     [](const auto& a, const auto& b) {
                                       return a.capacity() < b.capacity();
                                     });
    if (smallest->capacity() >= buf.capacity())
      return;
    total -= smallest->capacity();
    st.spare_buffers.erase(smallest);
  }
  st.spare_buffers.push_back(std::move(buf));
}

using compute_actor_t = caf::stateful_actor<compute_state>;

const batch_policy& policy_of(compute_state& st, const std::string& model) {
  auto i = st.cfg.batching.find(model);
  return i != st.cfg.batching.end() ? i->second : st.cfg.default_batching;
}

size_t rank_of(const compute_state& st, uint8_t kind) {
  auto k = static_cast<piece_kind>(kind);
  if (k == piece_kind::reload_model)
    k = piece_kind::load_model; // a reload ranks as a load
  auto i = std::find(st.cfg.priority.begin(), st.cfg.priority.end(), k);
  return static_cast<size_t>(i - st.cfg.priority.begin());
}

std::string task_where(const runtime::piece& p) {
  return "piece " + std::to_string(p.piece_no) + "/" + std::to_string(p.piece_count) + " of task "
         + std::to_string(p.task_id);
}

std::string version_name(const std::string& model, uint32_t version) {
  return "model '" + model + "' version " + std::to_string(version);
}

version_entry* find_version(compute_state& st, const std::string& model, uint32_t version) {
  auto i = st.models.find(model);
  if (i == st.models.end())
    return nullptr;
  auto v = i->second.versions.find(version);
  return v == i->second.versions.end() ? nullptr : &v->second;
}

/// Picks the version an infer/train task runs with. A model or version this process does not
/// hold (it restarted, or unloaded a superseded version) is errc::model_not_loaded: the
/// sender loads it again and resends.
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
    return make_error(errc::model_not_loaded, task_where(p) + ": unknown model '" + p.model_id
                                                + "' (not built in and not loaded)");
  if (p.model_version == 0) {
    if (i->second.active == 0)
      return make_error(errc::model_not_loaded,
                        task_where(p) + ": model '" + p.model_id + "' has no active version");
    return i->second.active;
  }
  if (i->second.versions.count(p.model_version) == 0)
    return make_error(errc::model_not_loaded, task_where(p) + ": model '" + p.model_id
                                                + "' has no loaded version "
                                                + std::to_string(p.model_version));
  return p.model_version;
}

/// True when `t` runs on an executor (an infer or train task of a runner's model).
bool on_executor(compute_state& st, const runtime::pooled_task& t) {
  if (runtime::is_load(t.kind) || runtime::is_builtin_model(t.model_id))
    return false;
  auto* v = find_version(st, t.model_id, t.model_version);
  return v != nullptr && v->on_executors();
}

task_result result_of(const runtime::pooled_task& t) {
  task_result r;
  r.task_id = t.task_id;
  r.complete = true;
  r.kind = static_cast<uint8_t>(t.kind);
  r.model = t.model_id;
  r.model_version = t.model_version;
  r.input_bytes = t.total_bytes;
  return r;
}

/// Runs one whole built-in task or a task of a raw (checksum) version; fills everything but
/// batch_size.
caf::expected<task_result> run_task(compute_state& st, runtime::pooled_task& t) {
  auto r = result_of(t);
  if (runtime::is_builtin_model(t.model_id)) {
    auto out = runtime::run_builtin(t.model_id, t.chunks);
    if (!out)
      return make_error(errc::invalid_argument,
                        "task " + std::to_string(t.task_id) + ": " + describe(out.error()));
    r.model_digest = "builtin";
    r.output = std::move(*out);
    return r;
  }
  auto* v = find_version(st, t.model_id, t.model_version);
  if (v == nullptr)
    return make_error(errc::model_not_loaded, "task " + std::to_string(t.task_id) + ": "
                                                + version_name(t.model_id, t.model_version)
                                                + " is not loaded");
  // A raw version's "inference" and "training step" is a checksum keyed by its digest: the
  // output depends on the exact version that ran.
  r.model_digest = v->digest;
  r.output = runtime::checksum_output(t.chunks, v->seed);
  ++v->tasks_run;
  return r;
}

void schedule_tick(compute_actor_t* self, clock_type::time_point at);

/// How long a version reloaded for pinned tasks waits for the first of them at most.
constexpr std::chrono::seconds reload_hold{30};

/// Unloads a superseded version once no task of it is pooled, queued or running and it was
/// not used for unload_grace (else looks again then).
void maybe_unload(compute_actor_t* self, const std::string& model, uint32_t version) {
  auto& st = self->state;
  auto m = st.models.find(model);
  if (m == st.models.end())
    return;
  auto v = m->second.versions.find(version);
  if (v == m->second.versions.end() || !v->second.superseded || v->second.pending > 0
      || m->second.active == version)
    return;
  auto at = v->second.last_used + st.cfg.unload_grace;
  if (v->second.awaiting_tasks)
    at = std::max(at, v->second.last_used + reload_hold);
  if (clock_type::now() < at) {
    schedule_tick(self, at);
    return;
  }
  if (v->second.on_executors())
    for (auto& ex : st.executors)
      self->request(ex.actor, caf::infinite, exec_unload_atom::value, model, version)
        .then([](uint64_t) {}, [](caf::error&) {});
  m->second.versions.erase(v);
  st.unloaded.push_back(model + ":" + std::to_string(version));
  if (st.unloaded.size() > 256)
    st.unloaded.erase(st.unloaded.begin(), st.unloaded.begin() + 128);
}

/// Forgets a finished (or dropped) task's hold on its version.
void release(compute_actor_t* self, uint64_t task_id) {
  auto& st = self->state;
  auto i = st.task_versions.find(task_id);
  if (i == st.task_versions.end())
    return;
  auto [model, version] = i->second;
  st.task_versions.erase(i);
  if (auto* v = find_version(st, model, version); v != nullptr) {
    v->last_used = clock_type::now();
    v->awaiting_tasks = false;
    if (v->pending > 0)
      --v->pending;
  }
  maybe_unload(self, model, version);
}

/// The error of a task whose bytes, read in place, could not be read to the end (a blob file
/// cut short under its mapping, a shared-memory region its sender released or reused):
/// nothing computed from them is answered.
caf::error torn_input(uint64_t task_id) {
  return make_error(errc::corrupt_data,
                    "task " + std::to_string(task_id)
                      + ": its input bytes changed while the task read them (a blob file cut "
                        "short, or a shared-memory region its sender reused)");
}

bool intact(const runtime::pooled_task& t) {
  return std::all_of(t.chunks.begin(), t.chunks.end(),
                     [](const runtime::payload_buffer& c) { return c.intact(); });
}

void deliver(compute_actor_t* self, waiting_task& w, caf::expected<task_result> r) {
  auto& st = self->state;
  if (r && !intact(w.task))
    r = torn_input(w.task.task_id);
  if (r) {
    ++st.completed;
    runtime::stage_trace::mark("cmp.deliver", w.task.task_id);
  } else {
    ++st.failed;
  }
  if (w.sink)
    w.sink->peer->reply(w.sink->key, w.sink->gen, w.sink->idx, r); // lost: the sender retries
  else if (r)
    w.rp.deliver(std::move(*r));
  else
    w.rp.deliver(r.error());
  release(self, w.task.task_id);
}

void drain(compute_actor_t* self);

/// Makes `version` (loaded) the active one; every other version is superseded and goes once
/// its last task is done (activating an older version again, a rollback, supersedes the
/// newer one). Returns the version active before.
uint32_t make_active(compute_actor_t* self, const std::string& model, uint32_t version) {
  auto& entry = self->state.models[model];
  auto previous = entry.active;
  entry.active = version;
  std::vector<uint32_t> others;
  for (auto& [v, e] : entry.versions) {
    e.superseded = v != version;
    if (v == version)
      e.awaiting_tasks = false;
    if (v != version)
      others.push_back(v);
  }
  for (auto v : others)
    maybe_unload(self, model, v);
  return previous;
}

/// Unloads every superseded version whose time has come (on the timer).
void sweep_superseded(compute_actor_t* self) {
  std::vector<std::pair<std::string, uint32_t>> candidates;
  for (auto& [name, e] : self->state.models)
    for (auto& [v, m] : e.versions)
      if (m.superseded && m.pending == 0)
        candidates.emplace_back(name, v);
  for (auto& [name, v] : candidates)
    maybe_unload(self, name, v);
}

/// True when one of `tasks` is an activation's load (load_model, not a reload).
bool activates(const std::vector<waiting_task>& tasks) {
  return std::any_of(tasks.begin(), tasks.end(),
                     [](const waiting_task& w) { return w.task.kind == piece_kind::load_model; });
}

/// The outcome of one executor's load of a pending version.
void on_loaded(compute_actor_t* self, const std::pair<std::string, uint32_t>& key, size_t ex,
               caf::expected<uint64_t> bytes) {
  auto& st = self->state;
  auto i = st.loading.find(key);
  if (i == st.loading.end())
    return;
  auto& pl = i->second;
  --pl.remaining;
  if (bytes) {
    pl.loaded_on.push_back(ex);
    pl.memory_bytes = std::max(pl.memory_bytes, *bytes);
  } else if (!pl.first_error) {
    pl.first_error = bytes.error();
  }
  if (pl.remaining > 0)
    return;
  auto done = std::move(pl);
  st.loading.erase(i);
  auto& [model, version] = key;
  if (done.first_error) {
    // Refused (unknown kind, bad file, memory bound): the other versions keep serving.
    for (auto idx : done.loaded_on)
      self->request(st.executors[idx].actor, caf::infinite, exec_unload_atom::value, model, version)
        .then([](uint64_t) {}, [](caf::error&) {});
    for (auto& w : done.waiting)
      deliver(self, w, done.first_error);
    return;
  }
  auto& entry = st.models[model];
  version_entry v;
  v.digest = done.digest;
  v.kind = done.kind;
  v.file_bytes = done.file_bytes;
  v.memory_bytes = done.memory_bytes;
  // A version other than the active one (loaded again for tasks pinned to it) goes once
  // those tasks are done.
  v.superseded = entry.active != 0 && version != entry.active;
  v.awaiting_tasks = v.superseded;
  entry.versions.emplace(version, std::move(v));
  if (entry.active == 0 || activates(done.waiting))
    make_active(self, model, version);
  else
    maybe_unload(self, model, version); // arms the timer of a reloaded superseded version
  for (auto& w : done.waiting) {
    auto r = result_of(w.task);
    r.model_digest = done.digest;
    r.batch_size = 1;
    r.output.assign(done.digest.begin(), done.digest.end());
    deliver(self, w, std::move(r));
  }
}

/// Runs a load_model task: raw bytes become a checksum version at once; a model file is
/// identified and loaded by every executor.
void start_load(compute_actor_t* self, waiting_task w) {
  auto& st = self->state;
  auto& t = w.task;
  auto digest = runtime::model_digest(t.chunks);
  auto where = "task " + std::to_string(t.task_id) + ": "
               + version_name(t.model_id, t.model_version);
  auto& entry = st.models[t.model_id];
  auto key = std::make_pair(t.model_id, t.model_version);
  auto other = [&](const std::string& d) {
    return make_error(errc::already_exists,
                      where + " is already loaded with digest " + d + ", not " + digest);
  };
  if (auto i = entry.versions.find(t.model_version); i != entry.versions.end()) {
    if (i->second.digest != digest)
      return deliver(self, w, other(i->second.digest));
    i->second.last_used = clock_type::now();
    if (t.kind == piece_kind::load_model)
      make_active(self, t.model_id, t.model_version);
    auto r = result_of(t);
    r.model_digest = digest;
    r.batch_size = 1;
    r.output.assign(digest.begin(), digest.end());
    return deliver(self, w, std::move(r));
  }
  if (auto i = st.loading.find(key); i != st.loading.end()) {
    if (i->second.digest != digest)
      return deliver(self, w, other(i->second.digest));
    i->second.waiting.push_back(std::move(w));
    return;
  }
  auto bytes = t.flatten();
  if (!runtime::looks_like_model_file(std::string_view(bytes.data(), bytes.size()))) {
    version_entry v;
    v.digest = digest;
    v.seed = std::stoull(digest.substr(0, 16), nullptr, 16);
    v.file_bytes = bytes.size();
    v.bytes = std::move(bytes);
    v.superseded = entry.active != 0 && t.model_version != entry.active;
    v.awaiting_tasks = v.superseded;
    entry.versions.emplace(t.model_version, std::move(v));
    if (entry.active == 0 || t.kind == piece_kind::load_model)
      make_active(self, t.model_id, t.model_version);
    else
      maybe_unload(self, t.model_id, t.model_version);
    auto r = result_of(t);
    r.model_digest = digest;
    r.batch_size = 1;
    r.output.assign(digest.begin(), digest.end());
    return deliver(self, w, std::move(r));
  }
  auto kind = runtime::identify_model(std::string_view(bytes.data(), bytes.size()));
  if (!kind)
    return deliver(self, w, make_error(errc::bad_model, where + ": " + describe(kind.error())));
  pending_load pl;
  pl.digest = digest;
  pl.kind = *kind;
  pl.file_bytes = bytes.size();
  pl.remaining = st.executors.size();
  pl.waiting.push_back(std::move(w));
  st.loading.emplace(key, std::move(pl));
  auto file = std::make_shared<const std::vector<char>>(std::move(bytes));
  for (size_t ex = 0; ex < st.executors.size(); ++ex)
    self
      ->request(st.executors[ex].actor, caf::infinite, exec_load_atom::value, key.first, key.second,
                *kind, exec_bytes{file})
      .then([=](uint64_t n) { on_loaded(self, key, ex, n); },
            [=](caf::error& e) { on_loaded(self, key, ex, std::move(e)); });
}

/// The executor with the fewest outstanding batches.
size_t pick_executor(const compute_state& st) {
  size_t best = 0;
  for (size_t i = 1; i < st.executors.size(); ++i)
    if (st.executors[i].outstanding < st.executors[best].outstanding)
      best = i;
  return best;
}

bool executor_idle(const compute_state& st) {
  return std::any_of(st.executors.begin(), st.executors.end(),
                     [](const executor_slot& e) { return e.outstanding == 0; });
}

/// Batches an executor may hold at once: 2 (COMB_EXECUTOR_DEPTH=1 for A/B measurements: one,
/// as before). A full inference batch goes to an executor that is still running one, so that
/// it waits in the executor's mailbox and starts as soon as the running one ends, instead of
/// after this actor's thread woke for the answer, took it and sent the next (on 2 cores
/// shared with a node, that thread waits for a core too while the kernels idle).
uint32_t executor_depth() {
  static const uint32_t depth = [] {
    const char* v = std::getenv("COMB_EXECUTOR_DEPTH");
    return v && std::string{v} == "1" ? 1u : 2u;
  }();
  return depth;
}

/// True when an executor can take the next batch of queue `key` now: one is idle, or the
/// batch is a full inference batch and one runs a single batch (executor_depth). Training
/// and batches due by their deadline wait for an idle executor, so that they neither hold a
/// later inference batch back nor stop growing while a batch runs.
bool executor_room(const compute_state& st, uint8_t kind, size_t waiting, uint32_t max_batch) {
  if (executor_idle(st))
    return true;
  if (static_cast<piece_kind>(kind) != piece_kind::infer || waiting < max_batch)
    return false;
  return std::any_of(st.executors.begin(), st.executors.end(),
                     [](const executor_slot& e) { return e.outstanding < executor_depth(); });
}

/// Sends the tasks of one model version to an executor as one batch; delivers each task's
/// result when it answers.
void run_on_executor(compute_actor_t* self, std::vector<waiting_task> tasks) {
  auto& st = self->state;
  auto b = std::make_shared<exec_batch>();
  auto held = std::make_shared<std::vector<waiting_task>>();
  for (auto& w : tasks) {
    auto& t = w.task;
    if (t.inputs.empty()) {
      auto* v = find_version(st, t.model_id, t.model_version);
      deliver(self, w,
              make_error(errc::invalid_argument,
                         "task " + std::to_string(t.task_id) + ": "
                           + version_name(t.model_id, t.model_version) + " ("
                           + (v ? v->kind : std::string{"?"})
                           + ") needs typed input tensors; the task carries opaque bytes"));
      continue;
    }
    b->model = t.model_id;
    b->version = t.model_version;
    b->kind = t.kind;
    runtime::task_tensors tt;
    tt.task_id = t.task_id;
    tt.tensors.specs = t.inputs;
    // The task is done with its chunks. Bytes read in place (a mapped blob file) stay
    // there: the runner reads them through task_tensors::views().
    auto in = t.take_payload_buffer();
    if (in.external())
      tt.input = std::move(in);
    else
      tt.tensors.bytes = in.take();
    b->tasks.push_back(std::move(tt));
    held->push_back(std::move(w));
  }
  if (held->empty())
    return;
  auto ex = pick_executor(st);
  ++st.executors[ex].outstanding;
  auto sent = clock_type::now();
  runtime::stage_trace::mark("cmp.toexec");
  auto finish = [=](caf::expected<exec_batch_ptr> done) {
    runtime::stage_trace::mark("cmp.fromexec");
    auto& st = self->state;
    auto& slot = st.executors[ex];
    --slot.outstanding;
    st.last_batch_end = clock_type::now();
    ++slot.batches;
    slot.tasks += held->size();
    auto n = static_cast<uint32_t>(held->size());
    for (size_t k = 0; k < held->size(); ++k) {
      auto& w = (*held)[k];
      if (!done) {
        deliver(self, w, done.error());
        continue;
      }
      slot.busy_us += k == 0 ? static_cast<uint64_t>((*done)->took.count()) : 0;
      auto& out = (*done)->results[k];
      if (!out) {
        deliver(self, w, out.error());
        continue;
      }
      if (!(*done)->tasks[k].input.intact()) {
        deliver(self, w, torn_input(w.task.task_id));
        continue;
      }
      auto r = result_of(w.task);
      if (auto* v = find_version(st, w.task.model_id, w.task.model_version)) {
        r.model_digest = v->digest;
        ++v->tasks_run;
      }
      r.batch_size = n;
      // Until the runner started: a batch may wait in the executor's mailbox behind the one
      // it runs (executor_depth).
      auto started = (*done)->started.time_since_epoch().count() != 0 ? (*done)->started : sent;
      r.queued_us = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(started - w.enqueued).count());
      r.run_us = static_cast<uint64_t>((*done)->took.count());
      auto ns = [](clock_type::time_point t) {
        return static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
      };
      r.whole_ns = ns(w.enqueued);
      r.replied_ns = ns(clock_type::now());
      r.outputs = std::move(out->specs);
      r.output = std::move(out->bytes);
      deliver(self, w, std::move(r));
    }
    // The runners are done with the inputs (they take them as const): their buffers take
    // the next tasks' bytes.
    if (done)
      for (auto& t : (*done)->tasks)
        give_spare(st, std::move(t.tensors.bytes));
    drain(self);
  };
  self->request(st.executors[ex].actor, caf::infinite, exec_run_atom::value, b)
    .then([=](exec_batch_ptr& done) { finish(done); },
          [=](caf::error& e) { finish(std::move(e)); });
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

/// True when the first `n` tasks of `q` include one that needs an executor.
bool needs_executor(compute_state& st, const std::deque<waiting_task>& q, size_t n) {
  for (size_t k = 0; k < n && k < q.size(); ++k)
    if (on_executor(st, q[k].task))
      return true;
  return false;
}

/// Runs every batch that is ready, highest priority first, then arms the timer. A batch for
/// the executors waits (and grows) while none is idle; its answer drains again.
void drain(compute_actor_t* self) {
  auto& st = self->state;
  for (;;) {
    auto now = clock_type::now();
    bool idle = executor_idle(st);
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
      // Loads never wait for a batch.
      bool ready = runtime::is_load(static_cast<piece_kind>(i->first.first))
                   || i->second.size() >= pol.max_batch || due.count(i->first.second) > 0;
      if (!ready)
        continue;
      if (!idle && needs_executor(st, i->second, pol.max_batch)
          && !executor_room(st, i->first.first, i->second.size(), pol.max_batch))
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
    // Tasks for the executors, by version: each version's tasks run as one runner call.
    std::map<uint32_t, std::vector<waiting_task>> by_version;
    for (auto& w : batch) {
      st.run_order.push_back(runtime::to_string(w.task.kind) + ":"
                             + std::to_string(w.task.task_id));
      if (st.run_order.size() > 1024)
        st.run_order.erase(st.run_order.begin(), st.run_order.begin() + 512);
      if (runtime::is_load(w.task.kind)) {
        start_load(self, std::move(w));
      } else if (on_executor(st, w.task)) {
        by_version[w.task.model_version].push_back(std::move(w));
      } else {
        auto r = run_task(st, w.task);
        if (r)
          r->batch_size = static_cast<uint32_t>(n);
        deliver(self, w, std::move(r));
      }
    }
    for (auto& [version, tasks] : by_version)
      run_on_executor(self, std::move(tasks));
  }
  std::optional<clock_type::time_point> next = st.pool->next_expiry();
  bool idle = executor_idle(st);
  for (auto& [key, q] : st.queues)
    if (!q.empty() && (idle || !needs_executor(st, q, policy_of(st, key.second).max_batch))) {
      auto at = q.front().enqueued + policy_of(st, key.second).max_delay;
      if (!next || at < *next)
        next = at;
    }
  if (next)
    schedule_tick(self, *next);
}

nlohmann::json models_json(const compute_state& st) {
  auto out = nlohmann::json::array();
  for (const auto& [name, e] : st.models)
    for (const auto& [v, m] : e.versions)
      out.push_back({{"model", name},
                     {"version", v},
                     {"kind", m.kind},
                     {"digest", m.digest},
                     {"bytes", m.file_bytes},
                     {"memory_bytes", m.memory_bytes},
                     {"active", e.active == v},
                     {"pending", m.pending},
                     {"tasks_run", m.tasks_run},
                     {"superseded", m.superseded}});
  return out;
}

/// How long the executors must have been idle, with no task waiting, before a task's arrival
/// wakes the kernels' pool early: longer than the pool workers spin after a region, so that
/// under a steady load (the workers busy or just done) it never wakes them.
constexpr auto quiet_spell = std::chrono::milliseconds{1};

/// A whole task arrived after a quiet spell (a lone request): wakes the kernels' pool workers
/// now, so that their wake-up overlaps this actor's intake (the blob's hash check, pooling)
/// and the hand-off to the executor, instead of starting when the executor does (it wakes
/// them too, a no-op while they spin). Only for CPU executors; COMB_COMPUTE_EARLY_WAKE=0
/// turns it off (A/B runs).
void wake_pool_early(compute_state& st) {
  static const bool on = [] {
    const char* v = std::getenv("COMB_COMPUTE_EARLY_WAKE");
    return !(v && std::string{v} == "0");
  }();
  if (!on || clock_type::now() - st.last_batch_end < quiet_spell)
    return;
  for (const auto& e : st.executors)
    if (e.outstanding != 0)
      return;
  for (const auto& [key, q] : st.queues)
    if (!q.empty())
      return;
  for (const auto& e : st.executors)
    if (e.cpu) {
      kernels::cpu_backend::wake_workers();
      ++st.early_wakes;
      return;
    }
}

/// Takes one piece (or, `whole`, a whole task of one message) into the pool; when that makes
/// its task whole, queues the task and answers with its result later.
// The header of a whole task sent as one message whose bytes travel another way (`how`: a
// shared-memory region, a blob file): its piece 0 of 1 without payload. Counts a refusal.
caf::expected<runtime::piece> whole_task_header(compute_actor_t* self, std::vector<char> header,
                                                const char* how) {
  auto p = runtime::decode_piece(std::move(header));
  if (!p) {
    ++self->state.rejected;
    return p.error();
  }
  if (!p->payload.empty() || p->piece_count != 1 || p->piece_no != 0) {
    ++self->state.rejected;
    return make_error(errc::protocol_error, task_where(*p) + ": a " + how
                                              + " task's header must be piece 0 of 1 without "
                                                "payload");
  }
  return p;
}

caf::result<task_result> accept_piece(compute_actor_t* self, runtime::piece piece, bool whole,
                                      std::optional<link_sink> sink = std::nullopt) {
  auto& st = self->state;
  auto p = &piece;
  if (runtime::is_load(p->kind)) {
    if (p->model_version == 0 || runtime::is_builtin_model(p->model_id)
        || p->model_id.empty()) {
      ++st.rejected;
      return make_error(errc::invalid_argument, task_where(*p)
                                                  + ": load_model needs a model name that is "
                                                    "not built in and a version of at least 1");
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
  bool tracked = !runtime::is_load(p->kind) && !runtime::is_builtin_model(p->model_id);
  auto model = p->model_id;
  auto version = p->model_version;
  auto added = whole ? st.pool->add_whole(std::move(*p)) : st.pool->add(std::move(*p));
  if (!added) {
    ++st.rejected;
    // A whole task whose specs do not describe its payload is dropped: it no longer holds
    // its version. (Other errors leave the task as it was: pooled, queued or running.)
    if (is(added.error(), errc::invalid_argument) && !st.pool->contains(task_id))
      release(self, task_id);
    return added.error();
  }
  if (tracked && st.task_versions.count(task_id) == 0) {
    if (auto* v = find_version(st, model, version)) {
      st.task_versions.emplace(task_id, std::make_pair(model, version));
      ++v->pending;
    }
  }
  if (!*added) {
    if (auto at = st.pool->next_expiry())
      schedule_tick(self, *at);
    task_result ack;
    ack.task_id = task_id;
    return ack;
  }
  auto& task = **added;
  auto key = std::make_pair(static_cast<uint8_t>(task.kind), task.model_id);
  // A task from a local link is answered there (deliver()), not through a promise.
  bool linked = sink.has_value();
  caf::typed_response_promise<task_result> rp;
  if (!linked)
    rp = self->make_response_promise<task_result>();
  st.queues[key].push_back(waiting_task{std::move(task), rp, clock_type::now(), std::move(sink)});
  drain(self);
  if (linked)
    return caf::delegated<task_result>{};
  return rp;
}

/// A whole task whose bytes wait in a shared-memory segment of the sender (one host); from
/// CAF (`sink` empty) or a local link.
caf::result<task_result> take_shm_task(compute_actor_t* self, std::vector<char>& header,
                                       runtime::shm_ref& ref, std::optional<link_sink> sink) {
  auto& st = self->state;
  runtime::stage_trace::mark("cmp.shm");
  auto p = whole_task_header(self, std::move(header), "shared-memory");
  if (!p)
    return p.error();
  if (!runtime::is_load(p->kind))
    wake_pool_early(st);
  // Read in place, no copy: the sender keeps the region until this task is answered,
  // and a region it released or reused meanwhile fails the task (intact()).
  auto bytes = st.shm.view(ref);
  if (!bytes) {
    ++st.rejected;
    return bytes.error();
  }
  p->payload = std::move(*bytes);
  ++st.shm_tasks;
  return accept_piece(self, std::move(*p), true, std::move(sink));
}

/// A whole task whose bytes are a pinned blob in the sender's blob store on this host, read
/// from its file; from CAF (`sink` empty) or a local link.
caf::result<task_result> take_blob_task(compute_actor_t* self, std::vector<char>& header,
                                        runtime::blob_file_ref& ref,
                                        std::optional<link_sink> sink) {
  auto& st = self->state;
  runtime::stage_trace::mark("cmp.blob");
  auto p = whole_task_header(self, std::move(header), "blob-file");
  if (!p)
    return p.error();
  if (!runtime::is_load(p->kind))
    wake_pool_early(st);
  auto spare = take_spare(st, ref.size);
  bool had_spare = spare.capacity() > 0;
  auto bytes = st.blob_files.read(ref, spare);
  if (had_spare && spare.capacity() == 0)
    ++st.buffers_reused; // read into it (a first read of these bytes)
  give_spare(st, std::move(spare)); // not needed: read in place
  if (!bytes) {
    ++st.rejected;
    return bytes.error();
  }
  p->payload = std::move(*bytes);
  runtime::stage_trace::mark("cmp.read", p->task_id);
  ++st.blob_file_tasks;
  if (!st.blob_sweep_armed && st.blob_files.files() > 0) {
    st.blob_sweep_armed = true;
    self->delayed_send(self, blob_file_idle, blob_sweep_atom::value);
  }
  return accept_piece(self, std::move(*p), true, std::move(sink));
}

/// Answers a task from a local link at once where take_*_task did not queue it (a refusal,
/// or an acknowledgement); a queued one is answered by deliver().
void answer_link(const link_sink& sink, caf::result<task_result>& r) {
  if (r.flag == caf::rt_error)
    sink.peer->reply(sink.key, sink.gen, sink.idx, std::move(r.err));
  else if (r.flag == caf::rt_value && r.value.match_elements<task_result>())
    sink.peer->reply(sink.key, sink.gen, sink.idx, r.value.get_as<task_result>(0));
}

caf::behavior compute_actor(compute_actor_t* self, compute_config cfg) {
  auto& st0 = self->state;
  st0.cfg = std::move(cfg);
  st0.pool.emplace(st0.cfg.pool);
  auto backends = st0.cfg.backends;
  if (backends.empty())
    backends.push_back(kernels::backends().front());
  for (auto& be : backends) {
    executor_slot slot;
    slot.backend = be->name();
    slot.cpu = be->device() == kernels::device::cpu;
    slot.actor = spawn_executor(self, executor_config{be, st0.cfg.model_memory_limit});
    st0.executors.push_back(std::move(slot));
  }
  if (st0.cfg.local_link && runtime::local_link_enabled()) {
    auto link = runtime::local_link_server::start(self->home_system(), self->address());
    if (link)
      st0.link = std::move(*link);
    else
      std::cerr << "comb compute: no local link (" << describe(link.error())
                << "); function actors on this host send over CAF\n";
  }
  self->attach_functor([link = st0.link] {
    if (link)
      link->stop();
  });
  return {
    [=](piece_atom, std::vector<char>& bytes) -> caf::result<task_result> {
      auto p = runtime::decode_piece(std::move(bytes));
      if (!p) {
        ++self->state.rejected;
        return p.error();
      }
      return accept_piece(self, std::move(*p), false);
    },
    [=](shm_piece_atom, std::vector<char>& header, runtime::shm_ref& ref)
      -> caf::result<task_result> { return take_shm_task(self, header, ref, std::nullopt); },
    [=](blob_piece_atom, std::vector<char>& header, runtime::blob_file_ref& ref)
      -> caf::result<task_result> { return take_blob_task(self, header, ref, std::nullopt); },
    [=](runtime::link_shm_atom, std::shared_ptr<runtime::local_link_peer>& peer, uint64_t key,
        uint32_t gen, std::vector<char>& header, runtime::shm_ref& ref) {
      ++self->state.link_tasks;
      link_sink sink{std::move(peer), key, gen, 0};
      auto r = take_shm_task(self, header, ref, sink);
      answer_link(sink, r);
    },
    [=](runtime::link_blob_atom, std::shared_ptr<runtime::local_link_peer>& peer, uint64_t key,
        uint32_t gen, std::vector<char>& header, runtime::blob_file_ref& ref) {
      ++self->state.link_tasks;
      link_sink sink{std::move(peer), key, gen, 0};
      auto r = take_blob_task(self, header, ref, sink);
      answer_link(sink, r);
    },
    [=](runtime::link_piece_atom, std::shared_ptr<runtime::local_link_peer>& peer, uint64_t key,
        uint32_t gen, uint32_t idx, std::vector<char>& bytes) {
      ++self->state.link_tasks;
      link_sink sink{std::move(peer), key, gen, idx};
      auto p = runtime::decode_piece(std::move(bytes));
      caf::result<task_result> r = p ? accept_piece(self, std::move(*p), false, sink)
                                     : caf::result<task_result>{p.error()};
      if (!p)
        ++self->state.rejected;
      answer_link(sink, r);
    },
    [=](runtime::local_link_atom) -> std::tuple<std::string, uint64_t> {
      auto& link = self->state.link;
      if (!link)
        return {std::string{}, uint64_t{0}};
      return {link->name(), link->token()};
    },
    [=](blob_sweep_atom) {
      auto& st = self->state;
      st.blob_sweep_armed = st.blob_files.release_idle(blob_file_idle) > 0;
      if (st.blob_sweep_armed)
        self->delayed_send(self, blob_file_idle, blob_sweep_atom::value);
    },
    [=](tick_atom) {
      auto& st = self->state;
      st.next_tick.reset();
      auto gone = st.pool->expire();
      st.expired += gone.size();
      for (auto id : gone)
        release(self, id);
      sweep_superseded(self);
      drain(self);
    },
    [=](activate_atom, const std::string& model, uint32_t version) -> caf::result<uint32_t> {
      auto& st = self->state;
      auto i = st.models.find(model);
      if (i == st.models.end() || i->second.versions.count(version) == 0)
        return make_error(errc::bad_model, "cannot activate model '" + model + "' version "
                                             + std::to_string(version)
                                             + ": that version is not loaded");
      return make_active(self, model, version);
    },
    [=](models_atom) { return models_json(self->state).dump(); },
    [=](runtime::ping_atom) { return self->state.completed; },
    [=](stats_atom) {
      auto& st = self->state;
      auto executors = nlohmann::json::array();
      uint64_t tasks_run = 0;
      for (auto& e : st.executors) {
        executors.push_back({{"backend", e.backend},
                             {"batches", e.batches},
                             {"tasks", e.tasks},
                             {"busy_ms", e.busy_us / 1000},
                             {"outstanding", e.outstanding}});
        tasks_run += e.tasks;
      }
      nlohmann::json j{{"backend", st.cfg.backend},
                       {"backend_note", st.cfg.backend_note},
                       {"executors", executors},
                       {"models", models_json(st)},
                       {"model_memory_limit", st.cfg.model_memory_limit},
                       {"unloaded", st.unloaded},
                       {"model_tasks_run", tasks_run},
                       {"incomplete_tasks", st.pool->incomplete_tasks()},
                       {"reserved_bytes", st.pool->reserved_bytes()},
                       {"held_bytes", st.pool->held_bytes()},
                       {"memory_limit", st.pool->config().memory_limit},
                       {"completed", st.completed},
                       {"failed", st.failed},
                       {"expired", st.expired},
                       {"rejected", st.rejected},
                       {"batches", st.batches},
                       {"shm_tasks", st.shm_tasks},
                       {"blob_file_tasks", st.blob_file_tasks},
                       {"blob_files_open", st.blob_files.files()},
                       {"blob_file_in_place", st.blob_files.in_place()},
                       {"buffers_reused", st.buffers_reused},
                       {"early_pool_wakes", st.early_wakes},
                       {"shm_segments_mapped", st.shm.mapped()},
                       {"local_link", st.link ? "@" + st.link->name() : std::string{}},
                       {"local_link_connections", st.link ? st.link->connections() : 0},
                       {"local_link_tasks", st.link_tasks},
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
