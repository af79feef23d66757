#include "actors/outbox_dispatcher.hpp"

#include "base/errc.hpp"
#include "runtime/invocation.hpp"
#include "runtime/pieces/outbox.hpp"
#include "base/wall_clock.hpp"
#include "storage/database.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <random>
#include <set>

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<comb::runtime::committed_call>)

namespace comb::actors {

namespace {

using poll_atom = caf::atom_constant<caf::atom("poll")>;
using ready_atom = caf::atom_constant<caf::atom("obxready")>;
using scan_atom = caf::atom_constant<caf::atom("obxscan")>;

struct dispatcher_state {
  storage::database* db = nullptr;
  runtime::router route;
  dispatcher_config cfg;
  std::vector<caf::actor> functions;
  size_t next_function = 0;
  /// Calls in flight: their payload bytes and when they were sent.
  struct flight {
    size_t bytes = 0;
    std::chrono::steady_clock::time_point since;
  };
  std::map<std::string, flight, std::less<>> in_flight;
  size_t bytes_in_flight = 0;
  /// A call could not be sent for lack of room: scan again once a call finishes.
  bool behind = false;
  bool scan_queued = false;
  /// The outbox may hold calls that no hint announced (after a start, or a call that came
  /// back unapplied): the next poll scans. Otherwise polls scan every cfg.scan_every only,
  /// since a scan walks the deleted rows of finished calls too.
  bool rescan = true;
  std::chrono::steady_clock::time_point last_scan;
  uint64_t sent = 0;
  uint64_t applied = 0;
  uint64_t duplicates = 0;
  uint64_t call_errors = 0;
  uint64_t apply_errors = 0;
  /// Calls sent on a commit's hint rather than found by a poll.
  uint64_t hinted = 0;
  /// Each dispatch is a new compute task: its id mixes the call's task id with this
  /// dispatcher's random nonce and a count, so a call sent again (after a node crash, or a
  /// timeout) never collides with pieces the compute process still holds from an earlier try.
  uint64_t nonce = std::random_device{}() * 0x100000001ull ^ std::random_device{}();
  uint64_t dispatches = 0;
  static inline const char* name = "comb.outbox_dispatcher";
};

using dispatcher_t = caf::stateful_actor<dispatcher_state>;

// A call is no longer in flight: its result was `applied`, or it stays in the outbox to be
// sent again.
void release(dispatcher_t* self, const std::string& key, bool applied) {
  auto& st = self->state;
  if (!applied)
    st.rescan = true;
  if (auto i = st.in_flight.find(key); i != st.in_flight.end()) {
    st.bytes_in_flight -= i->second.bytes;
    st.in_flight.erase(i);
  }
  if (st.behind && !st.scan_queued) {
    st.scan_queued = true;
    self->send(self, scan_atom::value);
  }
}

void apply(dispatcher_t* self, const runtime::pending_call& pc, nlohmann::json args) {
  runtime::invocation inv;
  inv.procedure = pc.call.result_procedure;
  inv.args = std::move(args);
  inv.role = pc.call.role;
  inv.parent_id = pc.execution_id;
  inv.sender = "outbox_dispatcher";
  auto key = pc.key;
  auto target = self->state.route.route(inv);
  if (!target) {
    ++self->state.apply_errors;
    release(self, key, false);
    return;
  }
  // No CAF timeout (it wakes CAF's clock thread twice per request): expire() is the backstop.
  self->request(*target, caf::infinite, call_atom::value, std::move(inv))
    .then(
      [=](nlohmann::json& r) {
        if (r.value("duplicate", false))
          ++self->state.duplicates;
        else
          ++self->state.applied;
        release(self, key, true);
      },
      [=](caf::error&) {
        // Not applied (e.g. a conflict): the call stays in the outbox and is sent again.
        ++self->state.apply_errors;
        release(self, key, false);
      });
}

// Hands a final error for `pc` (bad model, bad or damaged payload, ...) to its result
// procedure, which records it once.
void apply_error(dispatcher_t* self, const runtime::pending_call& pc, const caf::error& e) {
  apply(self, pc,
        nlohmann::json{{"call", pc.key}, {"error", describe(e)}, {"context", pc.call.context}});
}

// Reports a function call (to a function actor) or its result (back from one).
void record(dispatcher_t* self, const char* kind, bool outgoing, size_t function,
            const runtime::pending_call& pc, const std::string& status, nlohmann::json payload) {
  auto& hook = self->state.cfg.provenance;
  if (!hook)
    return;
  runtime::message_record m;
  m.kind = kind;
  auto fn = "function/" + std::to_string(function);
  m.sender = outgoing ? std::string{"outbox_dispatcher"} : fn;
  m.receiver = outgoing ? fn : std::string{"outbox_dispatcher"};
  m.execution_id = pc.task_id;
  m.parent_id = pc.execution_id;
  m.procedure = pc.call.result_procedure;
  m.role = pc.call.role;
  m.status = status;
  m.timestamp_ns = comb::wall_clock_ns();
  payload["call"] = pc.key;
  payload["model"] = pc.call.model;
  m.payload = payload.dump();
  hook->on_message(m);
}

// Sends `pc` to a function actor; `payload` holds its bytes when the caller read them already.
void dispatch(dispatcher_t* self, runtime::pending_call pc, std::vector<char>* payload = nullptr) {
  auto& st = self->state;
  runtime::task_request req;
  if (payload)
    req.bytes = std::move(*payload);
  else if (auto err = runtime::outbox::payload(*st.db, pc.key, req.bytes)) {
    if (is(err, errc::not_found))
      return; // Applied in the meantime.
    // A damaged payload does not heal.
    st.in_flight[pc.key] = {0, std::chrono::steady_clock::now()};
    apply_error(self, pc, err);
    return;
  }
  // splitmix64 of the call's task id and this attempt.
  uint64_t z = pc.task_id ^ (st.nonce + 0x9e3779b97f4a7c15ull * ++st.dispatches);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  pc.task_id = z ^ (z >> 31);
  req.task_id = pc.task_id;
  req.kind = static_cast<uint8_t>(pc.call.kind);
  req.model = pc.call.model;
  req.model_version = pc.call.model_version;
  req.inputs = pc.call.inputs;
  st.in_flight[pc.key] = {req.bytes.size(), std::chrono::steady_clock::now()};
  st.bytes_in_flight += req.bytes.size();
  ++st.sent;
  auto fn_index = st.next_function++ % st.functions.size();
  auto fn = st.functions[fn_index];
  record(self, "function_call", true, fn_index, pc, "sent",
         {{"bytes", req.bytes.size()}, {"model_version", req.model_version}});
  self->request(fn, caf::infinite, runtime::run_atom::value, std::move(req))
    .then(
      [=](runtime::task_result& r) mutable {
        record(self, "function_result", false, fn_index, pc, "ok",
               {{"model_version", r.model_version},
                {"model_digest", r.model_digest},
                {"output_bytes", r.output.size()}});
        nlohmann::json result{{"task_id", r.task_id},
                              {"model", r.model},
                              {"model_version", r.model_version},
                              {"model_digest", r.model_digest},
                              {"batch_size", r.batch_size},
                              {"input_bytes", r.input_bytes},
                              {"outputs", runtime::specs_to_json(r.outputs)},
                              {"output", nlohmann::json::binary_t{std::vector<uint8_t>(
                                           r.output.begin(), r.output.end())}}};
        nlohmann::json args{{"call", pc.key},
                            {"result", std::move(result)},
                            {"context", pc.call.context}};
        apply(self, pc, std::move(args));
      },
      [=](caf::error& e) mutable {
        ++self->state.call_errors;
        record(self, "function_result", false, fn_index, pc, "error", {{"error", describe(e)}});
        if (is(e, errc::unavailable) || e.category() != errc_category) {
          // Compute unreachable after the function actor's bounded retries: keep the call in
          // the outbox; it is sent again on a later poll.
          release(self, pc.key, false);
          return;
        }
        apply_error(self, pc, e);
      });
}

bool has_room(const dispatcher_state& st) {
  return st.in_flight.size() < st.cfg.max_in_flight
         && (st.in_flight.empty() || st.bytes_in_flight < st.cfg.max_in_flight_bytes);
}

// Sends committed calls that are not in flight, as many as there is room for. Returns how
// many it sent.
size_t scan(dispatcher_t* self) {
  auto& st = self->state;
  st.behind = false;
  if (!has_room(st)) {
    st.behind = true;
    return 0;
  }
  // The outbox holds only calls without a result, so each scan starts at the beginning:
  // calls of concurrent transactions commit in any order, a cursor would skip some. Calls in
  // flight are skipped before their rows are decoded: with a thousand in flight, decoding
  // them on every poll kept a core busy.
  auto room = st.cfg.max_in_flight - st.in_flight.size();
  auto calls = runtime::outbox::pending(*st.db, "", room, [&](std::string_view key) {
    return st.in_flight.find(key) != st.in_flight.end();
  });
  if (!calls)
    return 0;
  if (calls->size() == room)
    st.behind = true; // there may be more
  size_t sent = 0;
  for (auto& pc : *calls) {
    if (!has_room(st)) {
      st.behind = true;
      break;
    }
    ++sent;
    dispatch(self, std::move(pc));
  }
  return sent;
}

// Calls in flight longer than call_timeout are released to be sent again (a late reply is
// still applied, at most once).
void expire(dispatcher_t* self, std::chrono::steady_clock::time_point now) {
  auto& st = self->state;
  std::vector<std::string> late;
  for (auto& [key, f] : st.in_flight)
    if (now - f.since >= st.cfg.call_timeout)
      late.push_back(key);
  for (auto& key : late) {
    ++st.call_errors;
    release(self, key, false);
  }
}

void poll(dispatcher_t* self) {
  auto& st = self->state;
  size_t sent = 0;
  auto now = std::chrono::steady_clock::now();
  expire(self, now);
  if (st.rescan || st.behind || now - st.last_scan >= st.cfg.scan_every) {
    st.rescan = false;
    st.last_scan = now;
    sent = scan(self);
  }
  self->delayed_send(self, sent > 0 ? st.cfg.poll_busy : st.cfg.poll_idle, poll_atom::value);
}

// A call was just committed: send it now if there is room (otherwise a poll finds it). A
// scan may have sent it already, between its commit and this hint; its result cannot have
// come back yet, since the hint was queued first.
void on_ready(dispatcher_t* self, runtime::committed_call& c) {
  auto& st = self->state;
  if (st.in_flight.count(c.call.key) > 0)
    return;
  if (!has_room(st)) {
    st.behind = true; // sent by the scan that follows a release
    return;
  }
  ++st.hinted;
  // Without its payload (past the copies' bound), dispatch reads it from the outbox.
  dispatch(self, std::move(c.call), c.has_payload() ? &c.payload : nullptr);
}

caf::behavior dispatcher(dispatcher_t* self, storage::database* db, runtime::router route,
                         dispatcher_config cfg) {
  auto& st = self->state;
  st.db = db;
  st.route = std::move(route);
  st.cfg = std::move(cfg);
  for (uint32_t i = 0; i < std::max<uint32_t>(1, st.cfg.functions); ++i) {
    auto fc = st.cfg.function;
    fc.name = "function/" + std::to_string(i);
    if (!fc.provenance)
      fc.provenance = st.cfg.provenance;
    auto fn = spawn_function_actor(self->home_system(), fc);
    self->link_to(fn);
    st.functions.push_back(fn);
  }
  // Committed calls are announced at once; polls find those made before a restart, those
  // that did not fit in flight, and those to send again.
  runtime::outbox::set_listener(*db, [hdl = caf::actor_cast<caf::actor>(self)](
                                       std::shared_ptr<runtime::committed_call> c) {
    caf::anon_send(hdl, ready_atom::value, std::move(c));
  });
  self->attach_functor([db] { runtime::outbox::set_listener(*db, {}); });
  self->send(self, poll_atom::value);
  return {
    [=](poll_atom) { poll(self); },
    [=](ready_atom, std::shared_ptr<runtime::committed_call>& c) {
      if (c)
        on_ready(self, *c);
    },
    [=](scan_atom) {
      self->state.scan_queued = false;
      scan(self);
    },
    [=](caf::get_atom) {
      auto& st = self->state;
      return nlohmann::json{{"sent", st.sent},
                            {"applied", st.applied},
                            {"duplicates", st.duplicates},
                            {"call_errors", st.call_errors},
                            {"apply_errors", st.apply_errors},
                            {"hinted", st.hinted},
                            {"in_flight", st.in_flight.size()}}
        .dump();
    },
  };
}

} // namespace

caf::actor spawn_outbox_dispatcher(caf::actor_system& sys, storage::database& db,
                                   runtime::router route, dispatcher_config cfg) {
  return sys.spawn(dispatcher, &db, std::move(route), std::move(cfg));
}

} // namespace comb::actors
