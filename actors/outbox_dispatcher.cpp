// comb::actors::outbox_dispatcher: sending committed outbox calls, applying their results,
// and reloading a model version the compute process lost (see outbox_dispatcher.hpp).
#include "actors/outbox_dispatcher.hpp"

#include "base/errc.hpp"
#include "base/sync_point.hpp"
#include "runtime/invocation.hpp"
#include "runtime/pieces/model_store.hpp"
#include "runtime/pieces/outbox.hpp"
#include "runtime/pieces/stage_trace.hpp"
#include "base/wall_clock.hpp"
#include "storage/database.hpp"
#include "storage/transaction.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>
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
  /// Model reloads: calls that failed with model_not_loaded wait here, by (model, version as
  /// the call names it), for one reload_model task of that version; then they are sent again.
  std::map<std::pair<std::string, uint32_t>, std::vector<runtime::pending_call>> reloads;
  /// Reloads each call has waited for (at most max_reloads, then its error is final).
  std::map<std::string, uint32_t, std::less<>> reload_tries;
  uint64_t reloads_started = 0;
  uint64_t reloads_done = 0;
  uint64_t reload_errors = 0;
  uint64_t reload_resent = 0;
  uint64_t reloads_exhausted = 0;
  /// Calls that could not reach the compute process, until they reach it or give up.
  struct failing {
    uint32_t attempts = 0;
    std::chrono::steady_clock::time_point first;
    /// Not sent again before this.
    std::chrono::steady_clock::time_point next_try;
    std::string last_error;
    std::string model;
    uint32_t model_version = 0;
  };
  std::map<std::string, failing, std::less<>> failing_calls;
  uint64_t unreachable_errors = 0;
  uint64_t given_up = 0;
  /// The compute connection as the last call saw it: "unknown" before any call, "connected",
  /// "unreachable", or "none" (no compute process configured).
  std::string compute_state = "unknown";
  std::string compute_error;
  std::chrono::steady_clock::time_point compute_error_at;
  /// When the node's log last heard about unreachable calls, and how many it did not hear of.
  std::chrono::steady_clock::time_point last_log;
  uint64_t unlogged = 0;
  /// Result procedure invocations by the state actor that runs them: one batch in flight to
  /// each; those that come meanwhile wait and go together as the next batch (one transaction,
  /// state_actor.hpp), so under load a result costs a share of a commit, and alone nothing
  /// waits.
  struct apply_queue {
    state_actor target;
    bool busy = false;
    std::vector<std::string> keys;
    std::vector<runtime::invocation> invs;
  };
  std::vector<apply_queue> apply_queues;
  /// Requests that carried result procedure invocations to state actors (batches, or single
  /// calls with max_apply_batch 1).
  uint64_t apply_requests = 0;
  static inline const char* name = "comb.outbox_dispatcher";
};

using dispatcher_t = caf::stateful_actor<dispatcher_state>;

/// Reloads one call may wait for before model_not_loaded is its final result.
constexpr uint32_t max_reloads = 3;

// A fresh compute task id for a dispatch of the call (or reload) `base`: splitmix64 of it and
// this attempt.
uint64_t next_task_id(dispatcher_state& st, uint64_t base) {
  uint64_t z = base ^ (st.nonce + 0x9e3779b97f4a7c15ull * ++st.dispatches);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Forgets the flight of `key` without counting it as released (it is sent again at once).
void forget_flight(dispatcher_state& st, const std::string& key) {
  if (auto i = st.in_flight.find(key); i != st.in_flight.end()) {
    st.bytes_in_flight -= i->second.bytes;
    st.in_flight.erase(i);
  }
}

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

// Counts the outcome of the result procedure invocation for call `key` and releases the call:
// `result` is the procedure's result, or null when it was not applied (e.g. a conflict: the
// call stays in the outbox and is sent again).
void applied(dispatcher_t* self, const std::string& key, const nlohmann::json* result) {
  auto& st = self->state;
  if (!result) {
    ++st.apply_errors;
    release(self, key, false);
    return;
  }
  if (result->is_object() && result->value("duplicate", false))
    ++st.duplicates;
  else
    ++st.applied;
  release(self, key, true);
}

// Sends the invocations waiting in apply queue `q` to its state actor as one batch, if any
// wait; otherwise the queue is idle until the next one comes.
void send_applies(dispatcher_t* self, size_t q) {
  auto& queue = self->state.apply_queues[q];
  if (queue.invs.empty()) {
    queue.busy = false;
    return;
  }
  queue.busy = true;
  ++self->state.apply_requests;
  auto keys = std::make_shared<std::vector<std::string>>();
  std::vector<runtime::invocation> invs;
  size_t max_apply_batch = self->state.cfg.max_apply_batch;
  if (queue.invs.size() <= max_apply_batch) {
    keys->swap(queue.keys);
    invs.swap(queue.invs);
  } else {
    auto n = static_cast<std::ptrdiff_t>(max_apply_batch);
    keys->assign(std::make_move_iterator(queue.keys.begin()),
                 std::make_move_iterator(queue.keys.begin() + n));
    invs.assign(std::make_move_iterator(queue.invs.begin()),
                std::make_move_iterator(queue.invs.begin() + n));
    queue.keys.erase(queue.keys.begin(), queue.keys.begin() + n);
    queue.invs.erase(queue.invs.begin(), queue.invs.begin() + n);
  }
  // No CAF timeout (it wakes CAF's clock thread twice per request): expire() is the backstop.
  self->request(queue.target, caf::infinite, call_atom::value, std::move(invs))
    .then(
      [self, q, keys](std::vector<runtime::invocation_outcome>& outs) {
        for (size_t i = 0; i < keys->size(); ++i)
          applied(self, (*keys)[i], i < outs.size() && !outs[i].error ? &outs[i].result : nullptr);
        send_applies(self, q);
      },
      [self, q, keys](caf::error&) {
        for (auto& key : *keys)
          applied(self, key, nullptr);
        send_applies(self, q);
      });
}

void apply(dispatcher_t* self, const runtime::pending_call& pc, nlohmann::json args) {
  runtime::invocation inv;
  inv.procedure = pc.call.result_procedure;
  inv.args = std::move(args);
  inv.role = pc.call.role;
  inv.parent_id = pc.execution_id;
  inv.sender = "outbox_dispatcher";
  auto target = self->state.route.route(inv);
  if (!target) {
    applied(self, pc.key, nullptr);
    return;
  }
  if (self->state.cfg.max_apply_batch <= 1) {
    ++self->state.apply_requests;
    auto key = pc.key;
    runtime::stage_trace::mark("disp.apply");
    // No CAF timeout (it wakes CAF's clock thread twice per request): expire() is the backstop.
    self->request(*target, caf::infinite, call_atom::value, std::move(inv))
      .then([=](nlohmann::json& r) { applied(self, key, &r); },
            [=](caf::error&) { applied(self, key, nullptr); });
    return;
  }
  auto& queues = self->state.apply_queues;
  size_t q = 0;
  while (q < queues.size() && queues[q].target != *target)
    ++q;
  if (q == queues.size())
    queues.push_back({*target});
  queues[q].keys.push_back(pc.key);
  queues[q].invs.push_back(std::move(inv));
  if (!queues[q].busy)
    send_applies(self, q);
}

// Hands a final error for `pc` (bad model, bad or damaged payload, ...) to its result
// procedure, which records it once.
void apply_error(dispatcher_t* self, const runtime::pending_call& pc, const caf::error& e) {
  self->state.reload_tries.erase(pc.key);
  apply(self, pc,
        nlohmann::json{{"call", pc.key}, {"error", describe(e)}, {"context", pc.call.context}});
}

// `pc` could not reach the compute process (`e`): it stays in the outbox and is sent again
// after retry_pause, unless it has failed for give_up_after, when `e` becomes its result. The
// node's log hears of it at most once per log_every (and of every call that gives up).
void on_unreachable(dispatcher_t* self, const runtime::pending_call& pc, const caf::error& e) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  auto why = describe(e);
  ++st.unreachable_errors;
  st.compute_state = st.cfg.has_compute ? "unreachable" : "none";
  st.compute_error = why;
  st.compute_error_at = now;
  auto& f = st.failing_calls[pc.key];
  if (f.attempts++ == 0)
    f.first = now;
  f.next_try = now + st.cfg.retry_pause;
  f.last_error = why;
  f.model = pc.call.model;
  f.model_version = pc.call.model_version;
  auto secs = [](auto d) { return std::chrono::duration_cast<std::chrono::seconds>(d).count(); };
  bool give_up = st.cfg.give_up_after.count() > 0 && now - f.first >= st.cfg.give_up_after;
  if (give_up || now - st.last_log >= st.cfg.log_every) {
    std::cerr << "comb node: outbox call " << pc.key << " (" << pc.call.result_procedure
              << (pc.call.model.empty() ? std::string{}
                                        : ", model '" + pc.call.model + "' version "
                                            + std::to_string(pc.call.model_version))
              << ") cannot reach the compute process: " << why << " (attempt " << f.attempts
              << ", failing for " << secs(now - f.first) << " s"
              << (give_up ? std::string{"; giving up: its result records the error"}
                  : st.cfg.give_up_after.count() > 0
                    ? "; gives up after " + std::to_string(secs(st.cfg.give_up_after)) + " s"
                    : std::string{})
              << ")";
    if (st.unlogged > 0)
      std::cerr << "; " << st.unlogged << " other failure(s) since the last line";
    std::cerr << std::endl;
    st.last_log = now;
    st.unlogged = 0;
  } else {
    ++st.unlogged;
  }
  if (!give_up) {
    release(self, pc.key, false);
    return;
  }
  auto final_error = make_error(errc::unavailable,
                                "gave up after " + std::to_string(f.attempts) + " attempt(s) over "
                                  + std::to_string(secs(now - f.first)) + " s: " + why);
  st.failing_calls.erase(pc.key);
  ++st.given_up;
  // In flight until its result procedure ran, so that no scan sends it meanwhile.
  forget_flight(st, pc.key);
  st.in_flight[pc.key] = {0, now};
  apply_error(self, pc, final_error);
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

void dispatch(dispatcher_t* self, runtime::pending_call pc, std::vector<char>* payload = nullptr,
              std::shared_ptr<const runtime::payload_source> source = nullptr);

// Reports a model reload (the reload_model task the dispatcher sends on its own) for the call
// `pc` that needed it.
void record_reload(dispatcher_t* self, bool outgoing, size_t function,
                   const runtime::pending_call& pc, uint64_t task_id, uint32_t version,
                   const std::string& status, nlohmann::json payload) {
  auto reload = pc;
  reload.task_id = task_id;
  payload["model_version"] = version;
  auto i = self->state.reloads.find({pc.call.model, pc.call.model_version});
  payload["waiting_calls"] = i == self->state.reloads.end() ? 0 : i->second.size();
  record(self, "model_reload", outgoing, function, reload, status, std::move(payload));
}

// Ends the reload of `key`: its waiting calls are sent again (ok), get `err` as their final
// result, or go back to the outbox to be sent on a later poll (compute unreachable).
void finish_reload(dispatcher_t* self, const std::pair<std::string, uint32_t>& key,
                   const caf::error& err) {
  auto& st = self->state;
  auto i = st.reloads.find(key);
  if (i == st.reloads.end())
    return;
  auto waiting = std::move(i->second);
  st.reloads.erase(i);
  for (auto& pc : waiting) {
    if (!err) {
      ++st.reload_resent;
      forget_flight(st, pc.key); // dispatch counts it again (unless it is done meanwhile)
      dispatch(self, std::move(pc));
    } else if (is(err, errc::unavailable) || err.category() != errc_category) {
      release(self, pc.key, false);
    } else {
      apply_error(self, pc, err);
    }
  }
}

// Loads version `key.second` of model `key.first` (0: the active one) into the compute
// process: reads its bytes from the database and sends them as a reload_model task (which loads it without making it the active version).
void start_reload(dispatcher_t* self, const std::pair<std::string, uint32_t>& key,
                  const runtime::pending_call& trigger) {
  auto& st = self->state;
  ++st.reloads_started;
  auto [model, version] = key;
  if (version == 0) {
    auto txn = st.db->begin();
    auto active = runtime::model_store::active_version(*txn, model);
    txn->rollback();
    if (!active) {
      ++st.reload_errors;
      finish_reload(self, key, active.error());
      return;
    }
    version = *active;
  }
  auto file = runtime::model_store::read_version(*st.db, model, version);
  if (!file) {
    ++st.reload_errors;
    auto err = make_error(errc::bad_model,
                          "cannot reload model '" + model + "' version " + std::to_string(version)
                            + " into the compute process: " + describe(file.error()));
    record_reload(self, true, 0, trigger, 0, version, "error", {{"error", describe(err)}});
    finish_reload(self, key, err);
    return;
  }
  runtime::task_request req;
  req.task_id = next_task_id(st, trigger.task_id);
  req.kind = static_cast<uint8_t>(runtime::piece_kind::reload_model);
  req.model = model;
  req.model_version = version;
  req.bytes.assign(file->first.begin(), file->first.end());
  auto digest = std::move(file->second);
  auto fn_index = st.next_function++ % st.functions.size();
  auto task_id = req.task_id;
  record_reload(self, true, fn_index, trigger, task_id, version, "sent",
                {{"bytes", req.bytes.size()}, {"model_digest", digest}});
  self->request(st.functions[fn_index], caf::infinite, runtime::run_atom::value, std::move(req))
    .then(
      [=](runtime::task_result& r) {
        if (r.model_digest != digest) {
          ++self->state.reload_errors;
          auto err = make_error(errc::bad_model, "reloading model '" + model + "' version "
                                                   + std::to_string(version)
                                                   + ": the compute process loaded digest "
                                                   + r.model_digest + ", not the stored " + digest);
          record_reload(self, false, fn_index, trigger, task_id, version, "error",
                        {{"error", describe(err)}});
          finish_reload(self, key, err);
          return;
        }
        ++self->state.reloads_done;
        record_reload(self, false, fn_index, trigger, task_id, version, "ok",
                      {{"model_digest", r.model_digest}});
        finish_reload(self, key, caf::error{});
      },
      [=](caf::error& e) {
        ++self->state.reload_errors;
        record_reload(self, false, fn_index, trigger, task_id, version, "error",
                      {{"error", describe(e)}});
        finish_reload(self, key, e);
      });
}

// `pc` failed with model_not_loaded (`e`): it waits for a reload of its model version (one
// in flight per version; the first call that needs it starts it), at most max_reloads times,
// then `e` is its final result.
void await_reload(dispatcher_t* self, runtime::pending_call pc, const caf::error& e) {
  auto& st = self->state;
  auto tries = ++st.reload_tries[pc.key];
  if (tries > max_reloads) {
    ++st.reloads_exhausted;
    apply_error(self, pc,
                make_error(errc::model_not_loaded, describe(e) + " (still not loaded after "
                                                     + std::to_string(max_reloads) + " reloads)"));
    return;
  }
  std::pair<std::string, uint32_t> key{pc.call.model, pc.call.model_version};
  auto& waiting = st.reloads[key];
  bool first = waiting.empty();
  // A call sent again by a poll meanwhile (its flight expired) waits once.
  if (std::none_of(waiting.begin(), waiting.end(),
                   [&](const runtime::pending_call& w) { return w.key == pc.key; }))
    waiting.push_back(pc);
  if (first)
    start_reload(self, key, pc);
}

// Sends `pc` to a function actor; `payload` holds its bytes when the caller read them already,
// `source` says where to read them when the call's transaction pinned them.
void dispatch(dispatcher_t* self, runtime::pending_call pc, std::vector<char>* payload,
              std::shared_ptr<const runtime::payload_source> source) {
  auto& st = self->state;
  if (!st.cfg.has_compute) {
    forget_flight(st, pc.key);
    on_unreachable(self, pc,
                   make_error(errc::unavailable, "this node has no compute process (start it "
                                                 "with --compute HOST:PORT)"));
    return;
  }
  runtime::task_request req;
  if (source)
    req.source = std::move(source);
  else if (payload)
    req.bytes = std::move(*payload);
  else if (auto err = runtime::outbox::payload(*st.db, pc.key, req.bytes)) {
    if (is(err, errc::not_found)) {
      forget_flight(st, pc.key); // Applied in the meantime.
      return;
    }
    // A damaged payload does not heal.
    st.in_flight[pc.key] = {0, std::chrono::steady_clock::now()};
    apply_error(self, pc, err);
    return;
  }
  pc.task_id = next_task_id(st, pc.task_id);
  req.task_id = pc.task_id;
  req.kind = static_cast<uint8_t>(pc.call.kind);
  req.model = pc.call.model;
  req.model_version = pc.call.model_version;
  req.inputs = pc.call.inputs;
  forget_flight(st, pc.key); // a call sent again (after a reload) is counted once
  st.in_flight[pc.key] = {req.payload_size(), std::chrono::steady_clock::now()};
  st.bytes_in_flight += req.payload_size();
  ++st.sent;
  auto fn_index = st.next_function++ % st.functions.size();
  auto fn = st.functions[fn_index];
  if (self->state.cfg.provenance)
    record(self, "function_call", true, fn_index, pc, "sent",
           {{"bytes", req.payload_size()}, {"model_version", req.model_version}});
  // One copy of the call for both handlers (each capturing `pc` by value copied it, with
  // its key, model, context and input specs, once per handler); only one of them runs.
  auto call = std::make_shared<runtime::pending_call>(std::move(pc));
  runtime::stage_trace::mark("disp.send", req.task_id);
  self->request(fn, caf::infinite, runtime::run_atom::value, std::move(req))
    .then(
      [self, fn_index, call](runtime::task_result& r) {
        auto& pc = *call;
        runtime::stage_trace::mark("disp.reply", r.task_id);
        // The compute process ran the call; its result is not applied yet.
        COMB_SYNC_POINT("dispatcher.before_apply");
        if (self->state.cfg.provenance)
          record(self, "function_result", false, fn_index, pc, "ok",
                 {{"model_version", r.model_version},
                  {"model_digest", r.model_digest},
                  {"output_bytes", r.output.size()}});
        // Member by member: a braced initializer list copies every value once more and
        // checks each pair's shape.
        nlohmann::json result = nlohmann::json::object();
        result["task_id"] = r.task_id;
        result["model"] = std::move(r.model);
        result["model_version"] = r.model_version;
        result["model_digest"] = std::move(r.model_digest);
        result["batch_size"] = r.batch_size;
        result["input_bytes"] = r.input_bytes;
        result["queued_us"] = r.queued_us;
        result["run_us"] = r.run_us;
        result["whole_ns"] = r.whole_ns;
        result["replied_ns"] = r.replied_ns;
        result["outputs"] = runtime::specs_to_json(r.outputs);
        result["output"] = nlohmann::json::binary_t{
          std::vector<uint8_t>(r.output.begin(), r.output.end())};
        nlohmann::json args = nlohmann::json::object();
        args["call"] = pc.key;
        args["result"] = std::move(result);
        // Nothing reads the call's context after this (a call sent again reads its row).
        args["context"] = std::move(pc.call.context);
        self->state.reload_tries.erase(pc.key);
        self->state.failing_calls.erase(pc.key);
        self->state.compute_state = "connected";
        apply(self, pc, std::move(args));
      },
      [self, fn_index, call](caf::error& e) {
        auto& pc = *call;
        ++self->state.call_errors;
        record(self, "function_result", false, fn_index, pc, "error", {{"error", describe(e)}});
        if (is(e, errc::model_not_loaded)) {
          // The compute process lost the version (it restarted, or unloaded it): load it
          // again from the database and send the call once more.
          await_reload(self, std::move(pc), e);
          return;
        }
        if (is(e, errc::unavailable) || e.category() != errc_category) {
          // Compute unreachable after the function actor's bounded retries: keep the call in
          // the outbox; it is sent again after a pause, until it gives up.
          on_unreachable(self, pc, e);
          return;
        }
        self->state.failing_calls.erase(pc.key);
        self->state.compute_state = "connected"; // it answered, with an error
        apply_error(self, pc, e);
      });
  // Handed to a function actor, which may have sent its pieces to the compute process.
  COMB_SYNC_POINT("dispatcher.after_send");
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
  auto now = std::chrono::steady_clock::now();
  auto calls = runtime::outbox::pending(*st.db, "", room, [&](std::string_view key) {
    if (st.in_flight.find(key) != st.in_flight.end())
      return true;
    auto f = st.failing_calls.find(key);
    return f != st.failing_calls.end() && now < f->second.next_try; // pausing
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
  runtime::stage_trace::mark("disp.ready");
  if (st.in_flight.count(c.call.key) > 0 || st.failing_calls.count(c.call.key) > 0)
    return; // the scan sends a failing call once its pause is over
  if (!has_room(st)) {
    st.behind = true; // sent by the scan that follows a release
    return;
  }
  ++st.hinted;
  // Without its payload (past the copies' bound), dispatch reads it from the outbox.
  dispatch(self, std::move(c.call), c.has_payload() ? &c.payload : nullptr, c.source);
}

caf::behavior dispatcher(dispatcher_t* self, storage::database* db, runtime::router route,
                         dispatcher_config cfg) {
  auto& st = self->state;
  st.db = db;
  st.route = std::move(route);
  st.cfg = std::move(cfg);
  if (!st.cfg.has_compute)
    st.compute_state = "none";
  for (uint32_t i = 0; st.cfg.has_compute && i < std::max<uint32_t>(1, st.cfg.functions); ++i) {
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
      auto now = std::chrono::steady_clock::now();
      auto secs = [](auto d) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(d).count() / 1000.0;
      };
      nlohmann::json compute{{"state", st.compute_state},
                             {"endpoint", st.cfg.has_compute
                                            ? st.cfg.function.compute_host + ":"
                                                + std::to_string(st.cfg.function.compute_port)
                                            : std::string{"none"}},
                             {"give_up_after_s", secs(st.cfg.give_up_after)}};
      if (!st.compute_error.empty()) {
        compute["last_error"] = st.compute_error;
        compute["last_error_ago_s"] = secs(now - st.compute_error_at);
      }
      auto failing = nlohmann::json::array();
      for (auto& [key, f] : st.failing_calls) {
        nlohmann::json row{{"call", key},
                           {"model", f.model},
                           {"model_version", f.model_version},
                           {"attempts", f.attempts},
                           {"last_error", f.last_error},
                           {"failing_for_s", secs(now - f.first)}};
        if (st.cfg.give_up_after.count() > 0)
          row["gives_up_in_s"] = std::max(0.0, secs(f.first + st.cfg.give_up_after - now));
        failing.push_back(std::move(row));
      }
      return nlohmann::json{{"compute", std::move(compute)},
                            {"failing", std::move(failing)},
                            {"unreachable_errors", st.unreachable_errors},
                            {"given_up", st.given_up},
                            {"sent", st.sent},
                            {"applied", st.applied},
                            {"duplicates", st.duplicates},
                            {"call_errors", st.call_errors},
                            {"apply_errors", st.apply_errors},
                            {"apply_requests", st.apply_requests},
                            {"hinted", st.hinted},
                            {"in_flight", st.in_flight.size()},
                            {"reloads_started", st.reloads_started},
                            {"reloads_done", st.reloads_done},
                            {"reload_errors", st.reload_errors},
                            {"reload_resent", st.reload_resent},
                            {"reloads_exhausted", st.reloads_exhausted},
                            {"reloads_waiting", st.reloads.size()}}
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
