#include "actors/state_actor.hpp"

#include "base/errc.hpp"
#include "base/sync_point.hpp"
#include "base/thread_slot.hpp"
#include "base/json_text.hpp"
#include "base/wall_clock.hpp"
#include "runtime/router.hpp"
#include "storage/database.hpp"
#include "storage/record_value.hpp"
#include "storage/transaction.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>

namespace comb::actors {

namespace {

// Sets a text field of a reused record: it mostly holds that text already (the procedure,
// role, sender and receiver of the last invocation on this thread), which a comparison tells
// in fewer instructions than a copy over it takes.
void set_text(std::string& field, std::string_view text) {
  if (field != text)
    field.assign(text.data(), text.size());
}

// Runs the procedure once in a fresh transaction; commits on success.
caf::expected<nlohmann::json> run_once(const state_env& env, const runtime::procedure_def& def,
                                       runtime::call_context& ctx, runtime::invocation& inv,
                                       runtime::invocation_record* rec,
                                       std::vector<storage::row_change>* spare_changes) {
  // With a group committer the commit is made durable by it, together with others.
  auto txn = env.db->begin(/*group_sync=*/static_cast<bool>(env.committer));
  if (env.hook && env.hook->record_reads())
    txn->record_reads(true);
  if (!env.hook) // nobody reads the row changes: do not copy every value written
    txn->record_changes(false);
  else if (spare_changes)
    txn->reuse_changes(std::move(*spare_changes));
  if (env.owners)
    txn->set_row_guard([&](std::string_view table, std::string_view key) -> caf::error {
      if (!env.procs->is_partitioned(table))
        return {};
      auto p = static_cast<uint32_t>(runtime::partition_hash(key) % env.partitions);
      const auto& owner = (*env.owners)[p];
      if (owner == env.node_name)
        return {};
      std::vector<uint32_t> mine;
      for (uint32_t q = 0; q < env.owners->size(); ++q)
        if ((*env.owners)[q] == env.node_name)
          mine.push_back(q);
      return make_error(errc::unsupported,
                        def.name + ": row '" + std::string{key} + "' of table " + std::string{table}
                          + " is in partition " + std::to_string(p) + ", owned by node " + owner
                          + "; this node (" + env.node_name + ") runs partitions "
                          + runtime::describe_partitions(mine)
                          + "; Comb does not run one transaction across nodes");
    });
  caf::expected<nlohmann::json> result{nlohmann::json{}};
  try {
    result = def.fn(ctx, *txn, inv.args);
  } catch (const runtime::bad_argument& e) {
    result = make_error(errc::invalid_argument, def.name + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    result = make_error(errc::invalid_argument, def.name + ": " + e.what());
  } catch (const std::exception& e) {
    result = make_error(errc::procedure_failed, def.name + " threw: " + e.what());
  }
  if (txn->guard_error()) // refused even if the procedure turned the error into another
    result = txn->guard_error();
  if (!result) {
    txn->rollback();
    return result;
  }
  if (rec) {
    rec->read_only = txn->read_only();
    // Moved, not copied: the transaction no longer needs them once the procedure returned.
    rec->changes = txn->take_changes();
    rec->reads = txn->take_reads();
    rec->result.clear();
    storage::append_record_value(rec->result, *result);
    rec->status = "ok";
    rec->end_ns = comb::wall_clock_ns();
    env.hook->before_commit(*txn, *rec);
  }
  COMB_SYNC_POINT("commit.before");
  auto err = txn->commit();
  if (rec)
    env.hook->after_commit(*rec, !err);
  if (err)
    return err;
  return result;
}

// Fills `rec` with the provenance record of an invocation as it starts: every field set
// again, so a record can be reused from one invocation to the next.
void start_record(runtime::invocation_record& rec, const runtime::procedure_def& def,
                  const runtime::invocation& inv, uint32_t partition, const std::string& receiver,
                  uint64_t execution_id) {
  rec.execution_id = execution_id;
  rec.parent_id = inv.parent_id;
  set_text(rec.procedure, def.name);
  set_text(rec.role, inv.role);
  rec.args.clear();
  storage::append_record_value(rec.args, inv.args);
  rec.result.clear();
  rec.status.clear();
  rec.read_only = false;
  rec.partition = partition;
  rec.start_ns = comb::wall_clock_ns();
  rec.end_ns = 0;
  set_text(rec.sender, inv.sender);
  set_text(rec.receiver, receiver);
  rec.changes.clear();
  rec.reads.clear();
}

// The record of the invocation this thread runs, reused by the next one (the hook copies
// what it keeps before the handler returns): its strings keep their capacity, so the
// arguments and result (MessagePack, storage/record_value.hpp) are written without allocating, and no record is
// allocated per invocation. Its row changes are handed to the next invocation's transaction
// (transaction::reuse_changes), which records into them: a value written costs no allocation.
// A handler runs on one thread from start to end and never inside another, so one record per
// thread serves every state actor that runs there; a record taken meanwhile is a fresh one.
struct kept_record {
  runtime::invocation_record rec;
  /// The last record's row changes, for the next transaction to record into.
  std::vector<storage::row_change> spare_changes;
};
struct release_record {
  // Strings larger than this are released after use instead of kept for the next record.
  static constexpr size_t max_kept_bytes = 1 << 20;
  // Of the row changes, at most this many are kept, each value up to this size.
  static constexpr size_t max_kept_changes = 16;
  static constexpr size_t max_kept_value = 16 << 10;
  void operator()(kept_record& k) const {
    auto& r = k.rec;
    for (auto* s : {&r.args, &r.result})
      if (s->capacity() > max_kept_bytes)
        std::string{}.swap(*s);
    k.spare_changes = std::move(r.changes);
    r.changes.clear();
    if (k.spare_changes.size() > max_kept_changes)
      k.spare_changes.resize(max_kept_changes);
    for (auto& c : k.spare_changes)
      if (c.value.capacity() > max_kept_value)
        std::string{}.swap(c.value);
    r.reads.clear();
  }
};
using record_slot = thread_slot<kept_record, release_record>;

// The status recorded for a failed invocation: the comb::errc name, or "error".
std::string status_of(const caf::error& e) {
  return e.category() == errc_category ? to_string(static_cast<errc>(e.code())) : "error";
}

// The call context of an invocation of `def` that starts now: a fresh execution id.
runtime::call_context context_of(const state_env& env, const runtime::procedure_def& def,
                                 const runtime::invocation& inv, uint32_t partition) {
  runtime::call_context ctx;
  ctx.execution_id = runtime::next_execution_id();
  ctx.parent_id = inv.parent_id;
  ctx.procedure = def.name;
  ctx.role = inv.role;
  ctx.partition = partition;
  ctx.partitions = env.partitions;
  return ctx;
}

// Runs `inv` to its end as one transaction (retrying lock conflicts) and records its
// provenance. `writes` becomes true for a success that must be durable before its reply (a
// procedure that is not read-only).
caf::expected<nlohmann::json> invoke(state_actor_state& st, const state_env& env,
                                     uint32_t partition, const std::string& receiver,
                                     runtime::invocation& inv, bool& writes) {
  const auto* def = env.procs->find(inv.procedure);
  if (!def)
    return make_error(errc::unknown_procedure,
                      "no stored procedure named '" + inv.procedure + "'");
  if (!def->allows(inv.role)) {
    auto err = make_error(errc::permission_denied,
                          "role '" + inv.role + "' may not call " + inv.procedure);
    if (env.hook) {
      runtime::invocation_record rec;
      start_record(rec, *def, inv, partition, receiver, runtime::next_execution_id());
      rec.end_ns = rec.start_ns;
      rec.status = status_of(err);
      rec.result = describe(err);
      env.hook->on_failed(rec);
    }
    return err;
  }
  auto ctx = context_of(env, *def, inv, partition);
  std::optional<record_slot> slot;
  runtime::invocation_record* rec = nullptr;
  std::vector<storage::row_change>* spare_changes = nullptr;
  if (env.hook) {
    auto& kept = slot.emplace().get();
    rec = &kept.rec;
    spare_changes = &kept.spare_changes;
    start_record(*rec, *def, inv, partition, receiver, ctx.execution_id);
  }
  caf::expected<nlohmann::json> result{nlohmann::json{}};
  for (int attempt = 0;; ++attempt) {
    ctx.outbox_calls = 0; // a retry starts over in a new transaction
    result = run_once(env, *def, ctx, inv, rec, spare_changes);
    if (result || !is(result.error(), errc::conflict) || attempt + 1 >= max_conflict_retries)
      break;
    ++st.retries;
    // Back off: a deadlock victim that retries at once can take its first lock again
    // before the other transaction (whose thread the OS may not have run yet) got it,
    // and so lose every retry on a loaded machine.
    if (attempt < 2)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(
        std::chrono::microseconds{std::min(1000, 10 << std::min(attempt, 7))});
  }
  ++st.executed;
  if (rec) {
    if (!result) {
      rec->end_ns = comb::wall_clock_ns();
      rec->status = status_of(result.error());
      rec->result = describe(result.error());
      rec->changes.clear();
      rec->reads.clear();
      env.hook->on_failed(*rec);
    }
  }
  if (result && !def->opts.read_only) {
    COMB_SYNC_POINT("commit.before_reply");
    writes = true;
  }
  return result;
}

// Runs every invocation of `batch` in one transaction, each with its own call context
// (execution id, outbox calls), and commits once: the invocations take effect together, in
// order, as if each had run alone right after the one before. Only where nothing records
// provenance (the hook holds one record between before_commit and after_commit) and every
// partition is local (no row guard). Returns false, having changed nothing, when an
// invocation is refused, fails or throws, or the commit fails: the caller then runs each on
// its own, as a lone call runs, so every outcome is what it would have been alone.
bool run_batch(state_actor_state& st, const state_env& env, uint32_t partition,
               std::vector<runtime::invocation>& batch,
               std::vector<runtime::invocation_outcome>& out, bool& writes) {
  auto txn = env.db->begin(/*group_sync=*/static_cast<bool>(env.committer));
  txn->record_changes(false); // nobody reads the row changes
  out.clear();
  out.reserve(batch.size());
  bool wrote = false;
  for (auto& inv : batch) {
    const auto* def = env.procs->find(inv.procedure);
    if (!def || !def->allows(inv.role)) {
      txn->rollback();
      return false;
    }
    auto ctx = context_of(env, *def, inv, partition);
    caf::expected<nlohmann::json> result{nlohmann::json{}};
    try {
      result = def->fn(ctx, *txn, inv.args);
    } catch (const std::exception&) {
      result = make_error(errc::procedure_failed, "threw");
    }
    if (!result) {
      txn->rollback();
      return false;
    }
    wrote = wrote || !def->opts.read_only;
    out.push_back({std::move(*result), caf::error{}});
  }
  COMB_SYNC_POINT("commit.before");
  if (txn->commit())
    return false;
  st.executed += batch.size();
  if (wrote) {
    COMB_SYNC_POINT("commit.before_reply");
    writes = true;
  }
  return true;
}

} // namespace

state_actor::behavior_type state_actor_impl(state_actor::stateful_pointer<state_actor_state> self,
                                            state_env env, uint32_t partition) {
  auto receiver = env.node_name + "/p" + std::to_string(partition);
  return {
    [=](call_atom, runtime::invocation& inv) -> caf::result<nlohmann::json> {
      bool writes = false;
      auto result = invoke(self->state, env, partition, receiver, inv, writes);
      runtime::release_json(inv.args); // not read again; the message would destroy them
      if (writes && env.committer)
        return self->delegate(env.committer, sync_atom::value, std::move(*result));
      // Not `return json`: caf::result<T>(Us&&...) brace-initializes T, which would wrap a
      // JSON value in an array; the expected<T> constructor moves it as it is.
      return result;
    },
    [=](call_atom, std::vector<runtime::invocation>& batch)
      -> caf::result<std::vector<runtime::invocation_outcome>> {
      std::vector<runtime::invocation_outcome> out;
      bool writes = false;
      if (batch.size() < 2 || env.hook || env.owners
          || !run_batch(self->state, env, partition, batch, out, writes)) {
        out.clear();
        out.reserve(batch.size());
        for (auto& inv : batch) {
          auto r = invoke(self->state, env, partition, receiver, inv, writes);
          if (r)
            out.push_back({std::move(*r), caf::error{}});
          else
            out.push_back({nlohmann::json{}, std::move(r.error())});
        }
      }
      for (auto& inv : batch)
        runtime::release_json(inv.args);
      if (writes && env.committer) {
        // One wait for the WAL on disk for all of them (each commit is in it by now).
        auto rp = self->make_response_promise<std::vector<runtime::invocation_outcome>>();
        self->request(env.committer, caf::infinite, sync_atom::value, nlohmann::json{})
          .then([rp, out = std::move(out)](nlohmann::json&) mutable { rp.deliver(std::move(out)); },
                [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
        return rp;
      }
      return caf::expected<std::vector<runtime::invocation_outcome>>{std::move(out)};
    },
  };
}

} // namespace comb::actors
