#include "actors/function_actor.hpp"

#include "base/errc.hpp"
#include "runtime/pieces/local_link.hpp"
#include "runtime/pieces/piece.hpp"
#include "runtime/pieces/stage_trace.hpp"
#include "runtime/pieces/transfer_tuning.hpp"
#include "runtime/tls.hpp"
#include "base/wall_clock.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/openssl/manager.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <set>

namespace comb::actors {

namespace {

using runtime::piece_atom;
using runtime::run_atom;
using runtime::task_request;
using runtime::task_result;
using resend_atom = caf::atom_constant<caf::atom("resend")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using reconnect_atom = caf::atom_constant<caf::atom("reconnect")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using clock_type = std::chrono::steady_clock;

struct job {
  task_request req;
  caf::typed_response_promise<task_result> rp;
  /// Number of pieces this actor sends.
  uint32_t count = 0;
  uint32_t next = 0;
  uint32_t in_flight = 0;
  uint32_t acked = 0;
  uint32_t attempts = 1;
  uint32_t generation = 0;
  uint32_t overload_retries = 0;
  /// When a piece was last sent with none in flight, or last answered.
  clock_type::time_point progress;
  std::optional<task_result> final;
  /// Pieces over TCP for this actor's share of the task.
  uint32_t pieces = 0;
  /// The task's bytes in a shared-memory segment (the whole task as one message), while the
  /// compute process may still read them.
  std::optional<runtime::shm_ref> region;
  std::shared_ptr<runtime::shm_arena> region_arena;
  /// The whole task goes as one message naming its pinned blob's file (req.source->file):
  /// the compute process reads the bytes from there.
  bool by_file = false;
  /// The compute process found the blob file gone: this task's bytes go another way.
  bool files_tried = false;
  /// The serial of the local link its messages went over (0: none, they went through CAF).
  uint64_t link_serial = 0;
};

struct function_state {
  function_config cfg;
  caf::actor compute;
  bool connecting = false;
  uint64_t next_key = 0;
  std::map<uint64_t, job> jobs;
  std::vector<uint64_t> waiting;
  /// A sweep for tasks without replies is scheduled.
  bool sweeping = false;
  /// Shared-memory pieces: the segment in use (made on first use, retired when the
  /// connection is lost), and whether they are off (by config, or since the compute process
  /// could not read them).
  std::shared_ptr<runtime::shm_arena> arena;
  bool shm_off = false;
  /// Blob-file pieces are off (by config, off with shared memory, or since the compute
  /// process could not open a blob file).
  bool files_off = false;
  /// A ping to the compute process is out (see sweep()).
  bool pinging = false;
  /// The local link to the compute process (runtime/pieces/local_link.hpp), when it is on
  /// this host and has one; links made so far (each link's serial).
  std::unique_ptr<runtime::local_link_client> link;
  uint64_t links = 0;
  /// Not asked for again: off by COMB_LOCAL_LINK=off, or a link failed to connect.
  bool link_off = false;
  static inline const char* name = "comb.function";
};

using function_actor_t = caf::stateful_actor<function_state>;

std::string endpoint_of(const function_config& cfg) {
  return cfg.compute_host + ":" + std::to_string(cfg.compute_port);
}

// Reports a message between this function actor and the compute process to provenance.
void record(function_actor_t* self, const char* kind, bool outgoing, const task_request& req,
            const std::string& status, nlohmann::json payload) {
  auto& hook = self->state.cfg.provenance;
  if (!hook)
    return;
  runtime::message_record m;
  m.kind = kind;
  auto compute = "compute@" + endpoint_of(self->state.cfg);
  m.sender = outgoing ? self->state.cfg.name : compute;
  m.receiver = outgoing ? compute : self->state.cfg.name;
  m.execution_id = req.task_id;
  m.procedure = req.model;
  m.status = status;
  m.timestamp_ns = comb::wall_clock_ns();
  payload["task"] = req.task_id;
  m.payload = payload.dump();
  hook->on_message(m);
}

/// True when messages are reported to provenance: the hot path builds a record's payload
/// only then (a JSON object per piece and per reply otherwise made for nothing).
bool recording(function_actor_t* self) {
  return self->state.cfg.provenance != nullptr;
}

void pump(function_actor_t* self, uint64_t key);
void connect(function_actor_t* self);

/// Gives the task's shared-memory region back (the compute process is done with it).
void free_region(job& j) {
  if (j.region && j.region_arena)
    j.region_arena->release(*j.region);
  j.region.reset();
  j.region_arena.reset();
}

void fail(function_actor_t* self, uint64_t key, caf::error e) {
  auto i = self->state.jobs.find(key);
  if (i == self->state.jobs.end())
    return;
  free_region(i->second);
  i->second.rp.deliver(std::move(e));
  self->state.jobs.erase(i);
}

void finish(function_actor_t* self, uint64_t key) {
  auto i = self->state.jobs.find(key);
  if (i == self->state.jobs.end())
    return;
  auto& j = i->second;
  free_region(j);
  if (j.final) {
    j.rp.deliver(std::move(*j.final));
  } else {
    task_result r;
    r.task_id = j.req.task_id;
    j.rp.deliver(std::move(r));
  }
  self->state.jobs.erase(i);
}

/// True for errors that mean "the compute process is not there (any more)".
bool is_transport_error(const caf::error& e) {
  if (e.category() == errc_category)
    return is(e, errc::unavailable) || is(e, errc::network_error);
  return true; // CAF system errors: receiver down, timeout, no connection, ...
}

/// Starts the task of `key` over: the compute process lost whatever it had of it.
void restart(function_actor_t* self, uint64_t key, const caf::error& why) {
  auto i = self->state.jobs.find(key);
  if (i == self->state.jobs.end())
    return;
  auto& j = i->second;
  ++j.generation;
  j.by_file = false;
  j.link_serial = 0;
  j.next = j.in_flight = j.acked = 0;
  j.count = j.pieces;
  j.final.reset();
  free_region(j);
  if (j.attempts >= self->state.cfg.max_attempts) {
    fail(self, key,
         make_error(errc::unavailable, "task " + std::to_string(j.req.task_id)
                                         + ": compute process at " + endpoint_of(self->state.cfg)
                                         + " unavailable after " + std::to_string(j.attempts)
                                         + " attempts: " + describe(why)));
    return;
  }
  ++j.attempts;
  self->delayed_send(self, self->state.cfg.retry_delay, retry_atom::value, key, j.generation);
}

/// Stops using the shared-memory segment: nobody can open it any more, regions still out
/// are given back into it as their tasks end, and the next task makes a new one. A compute
/// process that lost the connection may still read an old region; it is never reused.
void retire_arena(function_actor_t* self) {
  if (self->state.arena) {
    self->state.arena->retire();
    self->state.arena.reset();
  }
}

/// Forgets the connection to the compute process (the next piece connects anew).
void drop_connection(function_actor_t* self) {
  retire_arena(self);
  self->state.link.reset();
  if (self->state.compute) {
    self->demonitor(self->state.compute);
    self->state.compute = nullptr;
  }
}

/// Keeps a sweep scheduled while there are tasks.
void arm_sweep(function_actor_t* self) {
  auto& st = self->state;
  if (st.sweeping || st.jobs.empty())
    return;
  st.sweeping = true;
  auto period = std::max(std::chrono::milliseconds{10}, st.cfg.request_timeout / 4);
  self->delayed_send(self, period, sweep_atom::value);
}

/// True when every piece of `j` is sent and answered but the one whose reply is the result:
/// the compute process holds the whole task and is running it.
bool awaiting_result(const job& j) {
  return j.next == j.count && j.in_flight == 1 && j.acked + 1 == j.count;
}

/// How long `j` may go without a reply before its connection counts as lost.
std::chrono::milliseconds silence_limit(const function_config& cfg, const job& j) {
  return awaiting_result(j) ? std::max(cfg.request_timeout, cfg.result_timeout)
                            : cfg.request_timeout;
}

/// The tasks `keys` (of generations `gens`) got no reply for `limit`: each such silence
/// counts as an attempt, and a task fails (unavailable) once it has had max_attempts. Their
/// pieces are not sent again: the connection is up (a lost one ends in the down handler or
/// in error replies, which restart the task), and CAF's middleman hands out the same cached
/// connection to the same host and port, so a resend travels behind the pieces it repeats.
/// Those completed the task once the compute process caught up (at load 12, or after a
/// stall of one socket read), the resent ones were refused ("duplicate piece", protocol
/// error), which failed the task, and the first result was dropped as stale.
void lost(function_actor_t* self, const std::vector<std::pair<uint64_t, uint32_t>>& keys,
          std::chrono::milliseconds limit) {
  auto& st = self->state;
  for (auto& [key, gen] : keys) {
    auto i = st.jobs.find(key);
    if (i == st.jobs.end() || i->second.generation != gen)
      continue;
    auto& j = i->second;
    record(self, "piece_error", false, j.req, "error",
           {{"error",
             "no reply from the compute process for " + std::to_string(limit.count()) + " ms"}});
    if (j.attempts >= st.cfg.max_attempts) {
      fail(self, key,
           make_error(errc::unavailable,
                      "task " + std::to_string(j.req.task_id) + ": compute process at "
                        + endpoint_of(st.cfg) + " unavailable after " + std::to_string(j.attempts)
                        + " attempts: task " + std::to_string(j.req.task_id) + ": no reply from "
                        + endpoint_of(st.cfg) + " for " + std::to_string(limit.count()) + " ms"));
      continue;
    }
    ++j.attempts;
    j.progress = clock_type::now(); // another `limit` on the same connection
  }
}

/// Finds the tasks whose pieces got no reply for request_timeout (result_timeout while the
/// task runs) and counts the silence against them (lost()). A task whose last piece is out
/// (the compute process holds it whole: its reply is the result, as for every task of one
/// piece or sent through shared memory) and that is silent for request_timeout makes the
/// actor ask the compute process whether it is there at all (ping_atom, answered by the
/// compute actor while executors run): no answer within request_timeout counts as such a
/// silence too. Before the ping, a stopped compute process held a one-piece task for
/// result_timeout (30 min); a task that runs long in a compute process that answers is left
/// to run.
void sweep(function_actor_t* self) {
  auto& st = self->state;
  st.sweeping = false;
  auto now = clock_type::now();
  std::map<std::chrono::milliseconds, std::vector<std::pair<uint64_t, uint32_t>>> stuck;
  std::vector<std::pair<uint64_t, uint32_t>> quiet;
  for (auto& [key, j] : st.jobs) {
    if (j.in_flight == 0)
      continue;
    auto limit = silence_limit(st.cfg, j);
    if (now - j.progress >= limit)
      stuck[limit].emplace_back(key, j.generation);
    else if (awaiting_result(j) && now - j.progress >= st.cfg.request_timeout)
      quiet.emplace_back(key, j.generation);
  }
  for (auto& [limit, keys] : stuck)
    lost(self, keys, limit);
  if (!quiet.empty() && st.compute && !st.pinging) {
    st.pinging = true;
    auto limit = st.cfg.request_timeout;
    auto was = st.compute;
    self->request(st.compute, limit, runtime::ping_atom::value)
      .then([=](uint64_t) { self->state.pinging = false; },
            [=](caf::error& e) {
              self->state.pinging = false;
              // A compute process without ping answers "unexpected message": it is there.
              if (e == caf::sec::unexpected_message || self->state.compute != was)
                return;
              lost(self, quiet, limit);
            });
  }
  arm_sweep(self);
}

/// A reply to a piece (or to a whole shared-memory task) of generation `gen`.
void on_reply(function_actor_t* self, uint64_t key, uint32_t gen, task_result& r) {
  auto i = self->state.jobs.find(key);
  if (i == self->state.jobs.end() || i->second.generation != gen)
    return;
  auto& j = i->second;
  runtime::stage_trace::mark("fn.reply", r.task_id);
  --j.in_flight;
  j.progress = clock_type::now();
  ++j.acked;
  if (r.complete && recording(self))
    record(self, "result", false, j.req, "ok",
           {{"model_version", r.model_version},
            {"model_digest", r.model_digest},
            {"batch_size", r.batch_size},
            {"output_bytes", r.output.size()}});
  if (r.complete)
    j.final = std::move(r);
  if (j.acked == j.count)
    finish(self, key);
  else
    pump(self, key);
}

/// True for the answers of a compute process that cannot take shared-memory pieces: it
/// cannot open the segment (errc::unsupported), or it predates them (unexpected message).
bool shm_refused(const caf::error& e) {
  if (e.category() == errc_category)
    return is(e, errc::unsupported);
  return e == caf::sec::unexpected_message;
}

/// An error answering piece `idx` (for a shared-memory task, 0) of generation `gen`.
void on_error(function_actor_t* self, uint64_t key, uint32_t gen, uint32_t idx, caf::error& e) {
  auto i = self->state.jobs.find(key);
  if (i == self->state.jobs.end() || i->second.generation != gen)
    return;
  auto& j = i->second;
  --j.in_flight;
  record(self, "piece_error", false, j.req, "error",
         {{"piece", j.req.first_piece + idx}, {"error", describe(e)}});
  if (is(e, errc::overloaded)) {
    if (++j.overload_retries > self->state.cfg.max_overload_retries) {
      fail(self, key, std::move(e));
      return;
    }
    self->delayed_send(self, self->state.cfg.overload_delay, resend_atom::value, key, gen, idx);
    return;
  }
  if (j.by_file && (shm_refused(e) || (e.category() == errc_category && is(e, errc::not_found)))) {
    // The compute process cannot read our blob files: shared memory (or TCP) from now on.
    // A file that is gone (a pinned segment unlinked after its blobs were deleted; the pin
    // still reads it) sends this task another way only.
    auto& st = self->state;
    if (!shm_refused(e)) {
      j.files_tried = true;
    } else {
      if (!st.files_off)
        std::cerr << "comb: " << st.cfg.name << ": blob-file pieces to compute@"
                  << endpoint_of(st.cfg) << " are off ("
                  << (e == caf::sec::unexpected_message
                        ? std::string{"the compute process does not know them: an older comb "
                                      "compute?"}
                        : describe(e))
                  << "); sending such tasks' bytes another way\n";
      st.files_off = true;
    }
    j.by_file = false;
    j.next = j.acked = 0;
    j.count = j.pieces;
    pump(self, key);
    return;
  }
  if (j.region && shm_refused(e)) {
    // The compute process cannot read our segment: TCP pieces from now on, this task too.
    auto& st = self->state;
    if (!st.shm_off)
      std::cerr << "comb: " << st.cfg.name << ": shared-memory pieces to compute@"
                << endpoint_of(st.cfg) << " are off ("
                << (e == caf::sec::unexpected_message
                      ? std::string{"the compute process does not know them: an older comb "
                                    "compute?"}
                      : describe(e))
                << "); sending pieces over TCP\n";
    st.shm_off = true;
    retire_arena(self);
    free_region(j);
    j.next = j.acked = 0;
    j.count = j.pieces;
    pump(self, key);
    return;
  }
  if (is_transport_error(e)) {
    drop_connection(self);
    restart(self, key, e);
    return;
  }
  fail(self, key, std::move(e));
}

/// After a send over the local link that returned `err`: true when the message went (`j`
/// notes the link's serial); else a link that is down is forgotten, and the caller sends
/// through CAF, as the next messages go.
bool sent_over_link(function_actor_t* self, job& j, const caf::error& err) {
  auto& link = self->state.link;
  if (!err) {
    j.link_serial = link->serial();
    return true;
  }
  if (!link->up())
    link.reset();
  return false;
}

void send_piece(function_actor_t* self, uint64_t key, uint32_t idx) {
  auto& j = self->state.jobs.at(key);
  const auto& req = j.req;
  auto gen = j.generation;
  if (j.by_file || j.region) {
    // The whole task as one message, its bytes a pinned blob that the compute process reads
    // from its file, or in shared memory: the header travels without payload.
    auto header = runtime::encode_piece(req.task_id, static_cast<runtime::piece_kind>(req.kind),
                                        req.model, req.model_version, 0, 1, nullptr, 0, req.inputs);
    if (j.in_flight++ == 0)
      j.progress = clock_type::now();
    if (recording(self))
      record(self, "piece", true, req, "sent",
             {{"piece", 0},
              {"pieces", 1},
              {"bytes", j.by_file ? req.source->size : j.region->size},
              {"transport", j.by_file ? "blob_file" : "shm"},
              {"model_version", req.model_version},
              {"attempt", j.attempts}});
    auto& compute = self->state.compute;
    runtime::stage_trace::mark("fn.send", req.task_id);
    if (auto& link = self->state.link; link && link->up()) {
      if (sent_over_link(self, j,
                         j.by_file ? link->send_blob(key, gen, header, *req.source->file)
                                   : link->send_shm(key, gen, header, *j.region)))
        return;
    }
    j.link_serial = 0;
    (j.by_file ? self->request(compute, caf::infinite, runtime::blob_piece_atom::value,
                               std::move(header), *req.source->file)
               : self->request(compute, caf::infinite, runtime::shm_piece_atom::value,
                               std::move(header), *j.region))
      .then([=](task_result& r) { on_reply(self, key, gen, r); },
            [=](caf::error& e) { on_error(self, key, gen, 0, e); });
    return;
  }
  size_t begin = static_cast<size_t>(idx) * req.piece_size;
  size_t end = std::min(req.bytes.size(), begin + req.piece_size);
  auto piece_count = req.piece_count == 0 ? j.count : req.piece_count;
  // The task's input specs ride on its piece 0 only (whichever actor sends that piece).
  static const std::vector<runtime::tensor_spec> no_specs;
  auto global = req.first_piece + idx;
  auto bytes = runtime::encode_piece(req.task_id, static_cast<runtime::piece_kind>(req.kind),
                                     req.model, req.model_version, global, piece_count,
                                     req.bytes.data() + begin, end - begin,
                                     global == 0 ? req.inputs : no_specs);
  if (j.in_flight++ == 0)
    j.progress = clock_type::now();
  if (recording(self))
    record(self, "piece", true, req, "sent",
           {{"piece", req.first_piece + idx},
            {"pieces", piece_count},
            {"bytes", end - begin},
            {"model_version", req.model_version},
            {"attempt", j.attempts}});
  if (auto& link = self->state.link; link && link->up()) {
    if (sent_over_link(self, j, link->send_piece(key, gen, idx, bytes)))
      return;
  }
  // No CAF timeout: sweep() is the backstop.
  self->request(self->state.compute, caf::infinite, piece_atom::value, std::move(bytes))
    .then([=](task_result& r) { on_reply(self, key, gen, r); },
          [=](caf::error& e) { on_error(self, key, gen, idx, e); });
}

/// Puts a whole task's bytes into the shared-memory segment when that applies; true when
/// they are there (the task then goes as one message). Bytes not read yet (req.source) are
/// read straight into the region. An error: they could not be read (final for the task).
caf::expected<bool> place_in_shm(function_actor_t* self, job& j) {
  auto& st = self->state;
  const auto& req = j.req;
  auto size = req.payload_size();
  if (st.shm_off || !st.cfg.shared_memory || req.first_piece != 0 || req.piece_count != 0
      || size < st.cfg.shared_memory_min
      || size + runtime::shm_region_header > st.cfg.shared_memory_bytes)
    return false;
  if (!st.arena) {
    auto a = runtime::shm_arena::create(st.cfg.shared_memory_bytes);
    if (!a) {
      std::cerr << "comb: " << st.cfg.name << ": shared-memory pieces are off ("
                << describe(a.error()) << "); sending pieces over TCP\n";
      st.shm_off = true;
      return false;
    }
    st.arena = std::move(*a);
  }
  auto r = st.arena->reserve(size);
  if (!r)
    return false; // full for now: this task goes over TCP
  if (req.source) {
    if (auto err = req.source->read(r->second)) {
      st.arena->release(r->first);
      return err;
    }
  } else if (size > 0) {
    std::memcpy(r->second, req.bytes.data(), size);
  }
  j.region = std::move(r->first);
  j.region_arena = st.arena;
  return true;
}

void pump(function_actor_t* self, uint64_t key) {
  auto i = self->state.jobs.find(key);
  if (i == self->state.jobs.end())
    return;
  if (!self->state.compute) {
    self->state.waiting.push_back(key);
    connect(self);
    return;
  }
  auto& j = i->second;
  if (j.next == 0 && j.in_flight == 0 && !j.region && !j.by_file && !j.files_tried
      && !self->state.files_off && j.req.source && j.req.source->file && j.req.first_piece == 0
      && j.req.piece_count == 0 && j.req.source->size >= self->state.cfg.shared_memory_min) {
    j.by_file = true;
    j.count = 1;
    j.next = 1;
    send_piece(self, key, 0);
    return;
  }
  if (j.next == 0 && j.in_flight == 0 && !j.region && !j.by_file) {
    auto placed = place_in_shm(self, j);
    if (placed && *placed) {
      j.count = 1;
      j.next = 1;
      send_piece(self, key, 0);
      return;
    }
    // Over TCP: the bytes must be in the request. Read them once (kept for resends).
    auto& req = j.req;
    caf::error err = placed ? caf::error{} : std::move(placed.error());
    if (!err && req.source) {
      req.bytes.resize(req.source->size);
      err = req.source->read(req.bytes.data());
    }
    if (err) {
      fail(self, key,
           make_error(errc::corrupt_data, "task " + std::to_string(req.task_id)
                                            + ": its input could not be read: " + describe(err)));
      return;
    }
    req.source.reset();
  }
  while (j.in_flight < self->state.cfg.window && j.next < j.count)
    send_piece(self, key, j.next++);
}

void connect_failed(function_actor_t* self, const caf::error& e) {
  auto keys = std::move(self->state.waiting);
  self->state.waiting.clear();
  for (auto key : keys) {
    auto i = self->state.jobs.find(key);
    if (i == self->state.jobs.end())
      continue;
    auto& j = i->second;
    if (j.attempts >= self->state.cfg.max_attempts) {
      fail(self, key,
           make_error(errc::unavailable, "task " + std::to_string(j.req.task_id)
                                           + ": cannot reach the compute "
                                             "process at "
                                           + endpoint_of(self->state.cfg) + " after "
                                           + std::to_string(j.attempts)
                                           + " attempts: " + describe(e)));
      continue;
    }
    ++j.attempts;
    self->state.waiting.push_back(key);
  }
  if (!self->state.waiting.empty())
    self->delayed_send(self, self->state.cfg.retry_delay, reconnect_atom::value);
}

/// On one host, asks the compute process for its local link and connects to it; tasks go
/// through CAF until it is up, and from then on their small messages go over the link.
void ask_for_link(function_actor_t* self) {
  auto& st = self->state;
  if (st.link_off || (st.shm_off && st.files_off))
    return;
  auto was = st.compute;
  self->request(st.compute, std::chrono::seconds{10}, runtime::local_link_atom::value)
    .then(
      [=](std::string& name, uint64_t token) {
        auto& st = self->state;
        if (name.empty() || st.compute != was || st.link)
          return;
        auto c = runtime::local_link_client::connect(self->home_system(), name, token,
                                                     self->address(), ++st.links);
        if (!c) {
          // Another host or network namespace behind a loopback port: CAF it is.
          st.link_off = true;
          return;
        }
        st.link = std::move(*c);
      },
      [=](caf::error&) {
        // An older compute process (no local link), or it went away: CAF it is.
      });
}

void connect(function_actor_t* self) {
  auto& st = self->state;
  if (st.connecting)
    return;
  auto& sys = self->home_system();
  if (st.cfg.tls && !sys.has_openssl_manager()) {
    connect_failed(self, make_error(errc::bad_config,
                                    "TLS to the compute process at " + endpoint_of(st.cfg)
                                      + " is asked for, but this actor system has no TLS files "
                                        "(system_config::set_tls)"));
    return;
  }
  st.connecting = true;
  // With TLS, the OpenSSL module's connection manager: same messages, TLS underneath; the
  // compute process's certificate must be for the host we connect to.
  if (st.cfg.tls)
    runtime::expect_tls_host(st.cfg.compute_host, st.cfg.compute_port);
  auto mm = st.cfg.tls ? sys.openssl_manager().actor_handle() : sys.middleman().actor_handle();
  self
    ->request(mm, std::chrono::seconds{10}, caf::connect_atom::value, st.cfg.compute_host,
              st.cfg.compute_port)
    .then(
      [=](const caf::node_id&, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
        self->state.connecting = false;
        if (!ptr) {
          connect_failed(self, make_error(errc::network_error, "no actor published there"));
          return;
        }
        self->state.compute = caf::actor_cast<caf::actor>(std::move(ptr));
        runtime::set_tcp_nodelay_on_all_sockets();
        self->monitor(self->state.compute);
        ask_for_link(self);
        auto keys = std::move(self->state.waiting);
        self->state.waiting.clear();
        for (auto key : keys)
          pump(self, key);
      },
      [=](caf::error& e) {
        self->state.connecting = false;
        connect_failed(self, e);
      });
}

caf::behavior function_actor(function_actor_t* self, function_config cfg) {
  if (cfg.max_attempts == 0)
    cfg.max_attempts = 1;
  if (cfg.window == 0)
    cfg.window = 1;
  self->state.cfg = std::move(cfg);
  auto& sc = self->state.cfg;
  if (auto* env = std::getenv("COMB_PIECES_SHM"); env && std::strcmp(env, "off") == 0)
    sc.shared_memory = false;
  self->state.shm_off = !sc.shared_memory || !runtime::is_loopback_host(sc.compute_host);
  if (auto* env = std::getenv("COMB_PIECES_BLOB_FILES"); env && std::strcmp(env, "off") == 0)
    sc.blob_files = false;
  self->state.files_off = self->state.shm_off || !sc.blob_files;
  self->state.link_off = !sc.local_link || !runtime::local_link_enabled();
  self->set_down_handler([=](caf::down_msg& dm) {
    if (dm.source != self->state.compute.address())
      return;
    // The compute process is gone: everything it held of our tasks is lost.
    self->state.compute = nullptr;
    retire_arena(self);
    self->state.link.reset();
    auto why = make_error(errc::unavailable, "compute process at " + endpoint_of(self->state.cfg)
                                               + " went away: " + caf::to_string(dm.reason));
    std::vector<uint64_t> keys;
    for (auto& [key, j] : self->state.jobs)
      if (j.next > 0)
        keys.push_back(key);
    for (auto key : keys)
      restart(self, key, why);
  });
  return {
    [=](run_atom, task_request& req) -> caf::result<task_result> {
      runtime::stage_trace::mark("fn.run", req.task_id);
      if (req.piece_size == 0 || req.piece_size > runtime::max_piece_payload)
        return make_error(errc::invalid_argument,
                          "task " + std::to_string(req.task_id) + ": piece_size "
                            + std::to_string(req.piece_size) + " is not in [1, 1048576]");
      job j;
      j.count = j.pieces = runtime::piece_count_for(req.payload_size(), req.piece_size);
      if (req.piece_count != 0 && uint64_t{req.first_piece} + j.count > req.piece_count)
        return make_error(errc::invalid_argument, "task " + std::to_string(req.task_id)
                                                    + ": pieces " + std::to_string(req.first_piece)
                                                    + ".."
                                                    + std::to_string(req.first_piece + j.count - 1)
                                                    + " do not fit a task of "
                                                    + std::to_string(req.piece_count) + " pieces");
      j.req = std::move(req);
      j.rp = self->make_response_promise<task_result>();
      auto key = self->state.next_key++;
      auto rp = j.rp;
      self->state.jobs.emplace(key, std::move(j));
      arm_sweep(self);
      pump(self, key);
      return rp;
    },
    [=](resend_atom, uint64_t key, uint32_t gen, uint32_t idx) {
      auto i = self->state.jobs.find(key);
      if (i == self->state.jobs.end() || i->second.generation != gen)
        return;
      if (!self->state.compute) {
        restart(self, key, make_error(errc::unavailable, "compute connection lost"));
        return;
      }
      send_piece(self, key, idx);
    },
    [=](retry_atom, uint64_t key, uint32_t gen) {
      auto i = self->state.jobs.find(key);
      if (i == self->state.jobs.end() || i->second.generation != gen)
        return;
      pump(self, key);
    },
    [=](sweep_atom) { sweep(self); },
    [=](runtime::link_reply_atom, uint64_t key, uint32_t gen, task_result& r) {
      on_reply(self, key, gen, r);
    },
    [=](runtime::link_error_atom, uint64_t key, uint32_t gen, uint32_t idx, caf::error& e) {
      on_error(self, key, gen, idx, e);
    },
    [=](runtime::link_down_atom, uint64_t serial) {
      // The link closed (the compute process went away, or broke the protocol): what it
      // carried is lost; those tasks start over as after a lost connection.
      auto& st = self->state;
      if (st.link && st.link->serial() == serial)
        st.link.reset();
      std::vector<std::pair<uint64_t, uint32_t>> lost_here;
      for (auto& [key, j] : st.jobs)
        if (j.link_serial == serial && j.in_flight > 0)
          lost_here.emplace_back(key, j.generation);
      for (auto& [key, gen] : lost_here) {
        auto e = make_error(errc::unavailable, "local link to the compute process at "
                                                 + endpoint_of(st.cfg) + " closed");
        on_error(self, key, gen, 0, e);
      }
    },
    [=](reconnect_atom) {
      if (!self->state.waiting.empty() && !self->state.compute)
        connect(self);
    },
  };
}

} // namespace

caf::actor spawn_function_actor(caf::actor_system& sys, function_config cfg) {
  runtime::keep_large_buffers_in_heap();
  return sys.spawn(function_actor, std::move(cfg));
}

} // namespace comb::actors
