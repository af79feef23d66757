#include "actors/gateway.hpp"

#include "base/errc.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>
#include <set>
#include <utility>

namespace comb::actors {

namespace {

using clock = std::chrono::steady_clock;

/// How long a connect to a peer may take (a peer that accepts and then says nothing), at most:
/// never longer than the forward timeout.
constexpr auto peer_connect_timeout = std::chrono::milliseconds{3000};
/// Longest wait between connect attempts after failures (the backoff doubles up to it).
constexpr auto peer_max_backoff = std::chrono::milliseconds{2000};

struct forwarded_call {
  std::string proc;
  std::string args;
  std::string role;
  uint32_t partition = 0;
  caf::response_promise rp;
};

/// What every peer link of a gateway knows about its own node.
struct link_context {
  std::string self; // this node's name
  uint32_t partitions = 0;
  runtime::tls_config tls;
  std::chrono::milliseconds forward_timeout{5000};
  std::string secret;
};

struct peer_link_state {
  gateway_peer peer;
  link_context ctx;
  gateway_actor gw;
  bool connecting = false;
  clock::time_point retry_at{};
  std::chrono::milliseconds backoff{0};
  std::string last_error;
  /// Calls waiting for the connect in progress.
  std::vector<forwarded_call> waiting;
  /// Calls sent to the peer, by number: answered `unavailable` when the connection drops
  /// (CAF 0.17 leaves a request to a lost node waiting for its timeout).
  std::map<uint64_t, caf::response_promise> in_flight;
  uint64_t next_id = 0;
  static inline const char* name = "peer_link";
};

caf::error unreachable(const peer_link_state& st, uint32_t partition) {
  return make_error(errc::unavailable,
                    "partition " + std::to_string(partition) + " is run by node " + st.peer.name
                      + " (" + st.peer.address.to_string() + "), which is unreachable"
                      + (st.last_error.empty() ? std::string{} : ": " + st.last_error));
}

// One link to a peer's gateway; see gateway.hpp.
caf::behavior peer_link(caf::stateful_actor<peer_link_state>* self, gateway_peer peer,
                        link_context ctx) {
  self->state.peer = std::move(peer);
  self->state.ctx = std::move(ctx);
  auto send_call = [self](forwarded_call c) {
    auto& st = self->state;
    auto id = st.next_id++;
    st.in_flight.emplace(id, c.rp);
    // The call's own bound: during a network cut the connection neither answers nor drops,
    // and the caller (e.g. `comb call` without --timeout) would otherwise wait for minutes.
    self
      ->request(st.gw, st.ctx.forward_timeout, forwarded_atom::value, c.proc, std::move(c.args),
                std::move(c.role), st.ctx.self, c.partition, st.ctx.partitions)
      .then(
        [self, id](std::string& r) {
          auto i = self->state.in_flight.find(id);
          if (i == self->state.in_flight.end())
            return;
          i->second.deliver(std::move(r));
          self->state.in_flight.erase(i);
        },
        [self, id, partition = c.partition, proc = c.proc](caf::error& e) {
          auto& st = self->state;
          auto i = st.in_flight.find(id);
          if (i == st.in_flight.end())
            return;
          if (e == caf::sec::request_receiver_down) {
            st.last_error = "the connection was lost";
            e = unreachable(st, partition);
          } else if (e == caf::sec::request_timeout) {
            st.last_error = "a forwarded call got no answer within "
                            + std::to_string(st.ctx.forward_timeout.count()) + " ms";
            e = make_error(errc::timeout,
                           proc + ": partition " + std::to_string(partition) + " is run by node "
                             + st.peer.name + " (" + st.peer.address.to_string()
                             + "), which did not answer within the forward timeout ("
                             + std::to_string(st.ctx.forward_timeout.count())
                             + " ms): it is cut off, stopped or overloaded. The call may or may "
                               "not have committed there: check before retrying, or repeat it "
                               "with the same idempotency id");
          }
          i->second.deliver(std::move(e));
          self->state.in_flight.erase(i);
        });
  };
  auto failed = [self](std::string why) {
    auto& st = self->state;
    st.connecting = false;
    st.last_error = std::move(why);
    st.backoff = std::min(peer_max_backoff,
                          std::max(std::chrono::milliseconds{100}, st.backoff * 2));
    st.retry_at = clock::now() + st.backoff;
    for (auto& c : st.waiting)
      c.rp.deliver(unreachable(st, c.partition));
    st.waiting.clear();
  };
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (dm.source != caf::actor_cast<caf::actor_addr>(st.gw))
      return;
    st.gw = nullptr;
    st.last_error = "the connection was lost";
    // Retry at the next call: a restarted peer is reached again at once.
    st.retry_at = clock::now();
    for (auto& [id, rp] : st.in_flight)
      rp.deliver(make_error(errc::unavailable,
                            "node " + st.peer.name + " (" + st.peer.address.to_string()
                              + ") was lost before it answered: the call may or may not have "
                                "committed there"));
    st.in_flight.clear();
  });
  return {
    [=](call_atom, std::string& proc, std::string& args, std::string& role,
        uint32_t partition) -> caf::result<std::string> {
      auto& st = self->state;
      // Before the promise is made: once it is, what the handler returns is dropped (CAF
      // 0.17), and this error never reached the caller, who waited for its timeout.
      if (!st.gw && !st.connecting && clock::now() < st.retry_at)
        return unreachable(st, partition); // fail fast during the backoff
      auto rp = self->make_response_promise<std::string>();
      forwarded_call c{std::move(proc), std::move(args), std::move(role), partition, rp};
      if (st.gw) {
        send_call(std::move(c));
        return rp;
      }
      st.waiting.push_back(std::move(c));
      if (st.connecting)
        return rp;
      st.connecting = true;
      // runtime::remote_actor blocks (bounded): a helper of its own makes the connection, so
      // the link keeps answering and failing calls fast meanwhile.
      auto link = caf::actor_cast<caf::actor>(self);
      auto bound = std::min(peer_connect_timeout, st.ctx.forward_timeout);
      self->spawn<caf::detached>([link, peer = st.peer, tls = st.ctx.tls, secret = st.ctx.secret,
                                  bound](caf::event_based_actor* helper) {
        auto gw = runtime::remote_actor<gateway_actor>(helper->home_system(), peer.address.host,
                                                       peer.address.port, bound, tls);
        caf::error err;
        if (gw)
          err = authenticate(helper->home_system(), *gw, secret, bound);
        if (gw && !err)
          helper->send(link, caf::connect_atom::value, *gw);
        else
          helper->send(link, caf::connect_atom::value, describe(gw ? err : gw.error()));
        helper->quit();
      });
      return rp;
    },
    [=](caf::connect_atom, gateway_actor& gw) {
      auto& st = self->state;
      st.gw = std::move(gw);
      st.connecting = false;
      st.backoff = std::chrono::milliseconds{0};
      st.last_error.clear();
      self->monitor(st.gw);
      auto waiting = std::move(st.waiting);
      st.waiting.clear();
      for (auto& w : waiting)
        send_call(std::move(w));
    },
    [=](caf::connect_atom, std::string& why) { failed(std::move(why)); },
    [=](info_atom) {
      auto& st = self->state;
      nlohmann::json j{{"name", st.peer.name},
                       {"address", st.peer.address.to_string()},
                       {"state", st.gw           ? "connected"
                                 : st.connecting ? "connecting"
                                                 : "idle"}};
      if (!st.last_error.empty())
        j["last_error"] = st.last_error;
      return j.dump();
    },
  };
}

using gateway_ptr = gateway_actor::stateful_pointer<gateway_state>;
using json = nlohmann::json;
using json_then = std::function<void(caf::expected<json>)>;

/// A model to mirror: its name, the node that holds its partition and the link to it, and
/// the state actor here that runs the call needing it (and so the mirror procedures).
struct mirror_job {
  std::string name;
  std::string owner;
  uint32_t partition = 0;
  caf::actor link;
  state_actor where;
};

// Runs `inv` on the state actor `where` and answers `rp` with its result.
void deliver_local(gateway_ptr self, caf::response_promise rp, const state_actor& where,
                   runtime::invocation inv) {
  self->request(where, caf::infinite, call_atom::value, std::move(inv))
    .then([rp](json& r) mutable { rp.deliver(r.dump()); },
          [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
}

// The mirror `inv` needs before it runs on `where`: none when it names no model, or when this
// node holds the model's partition itself.
caf::expected<std::optional<mirror_job>> mirror_needed(gateway_ptr self,
                                                       const runtime::invocation& inv,
                                                       const state_actor& where) {
  const auto& r = self->state.router;
  const auto* def = r.procs().find(inv.procedure);
  if (!def || def->opts.model_arg.empty() || !r.procs().find("comb.model.active"))
    return std::optional<mirror_job>{};
  auto i = inv.args.find(def->opts.model_arg);
  if (i == inv.args.end() || !i->is_string())
    return std::optional<mirror_job>{}; // the procedure names what is wrong
  runtime::invocation probe;
  probe.procedure = "comb.model.active";
  probe.args = json{{"name", *i}};
  auto t = r.locate(probe);
  if (!t || t->local)
    return std::optional<mirror_job>{};
  auto link = self->state.peers.find(t->owner);
  if (link == self->state.peers.end())
    return make_error(errc::unavailable, inv.procedure + ": model '" + i->get<std::string>()
                                           + "' is kept by node " + t->owner + " (partition "
                                           + std::to_string(t->partition)
                                           + "), which this node does not know");
  return std::optional<mirror_job>{
    mirror_job{i->get<std::string>(), t->owner, t->partition, link->second, where}};
}

// Ends the fetch of a mirror: every call waiting for it runs (no error) or fails with `err`.
void end_fetch(gateway_ptr self, const std::string& name, const caf::error& err) {
  auto& m = self->state.mirrors[name];
  m.fetching = false;
  if (!err)
    m.checked = clock::now();
  auto waiting = std::move(m.waiting);
  m.waiting.clear();
  for (auto& w : waiting)
    w(err);
}

// What a call gets when the owner of its model could not give it: the owner's code (errc),
// or unavailable, naming the owner.
caf::error owner_error(const mirror_job& j, const caf::error& e) {
  auto code = e.category() == errc_category ? static_cast<errc>(e.code()) : errc::unavailable;
  auto why = describe(e);
  if (auto said = to_string(code) + ": "; why.rfind(said, 0) == 0)
    why.erase(0, said.size()); // the code is said once, in front
  return make_error(code, "model '" + j.name + "' is kept by node " + j.owner + " (partition "
                            + std::to_string(j.partition) + "): " + why);
}

// Calls `proc` on the model's owner through the peer link (which bounds it by the forward
// timeout, after a connect bounded by its own).
void ask_owner(gateway_ptr self, const mirror_job& j, const char* proc, const json& args,
               json_then k) {
  auto bound = self->state.forward_timeout + peer_connect_timeout + std::chrono::seconds{1};
  self
    ->request(j.link, bound, call_atom::value, std::string{proc}, args.dump(),
              std::string{"admin"}, j.partition)
    .then(
      [k, proc = std::string{proc}](std::string& text) {
        auto r = json::parse(text, nullptr, /*allow_exceptions=*/false);
        if (r.is_discarded())
          k(make_error(errc::corrupt_data, proc + " answered text that is not JSON"));
        else
          k(std::move(r));
      },
      [k](caf::error& e) { k(std::move(e)); });
}

// Runs a mirror procedure here, on the state actor that runs the call.
void run_mirror_proc(gateway_ptr self, const mirror_job& j, const char* proc, json args,
                     json_then k) {
  runtime::invocation inv;
  inv.procedure = proc;
  inv.args = std::move(args);
  inv.role = "admin";
  inv.sender = "gateway";
  self->request(j.where, caf::infinite, call_atom::value, std::move(inv))
    .then([k](json& r) { k(std::move(r)); }, [k](caf::error& e) { k(std::move(e)); });
}

void store_mirror(gateway_ptr self, const mirror_job& j, const json& active, bool fetched);

// Copies the chunks `missing[at..]` of the owner's active version here, then stores it.
void fetch_chunks(gateway_ptr self, const mirror_job& j, const json& active,
                  std::vector<int64_t> missing, size_t at) {
  if (at == missing.size()) {
    store_mirror(self, j, active, /*fetched=*/true);
    return;
  }
  json where{{"name", j.name}, {"version", active.at("version")}, {"chunk_no", missing[at]}};
  ask_owner(self, j, "comb.model.get_chunk", where,
            [=](caf::expected<json> chunk) mutable {
              if (!chunk) {
                end_fetch(self, j.name, owner_error(j, chunk.error()));
                return;
              }
              auto args = where;
              args["data"] = chunk->value("data", std::string{});
              run_mirror_proc(self, j, "comb.model.mirror_chunk", std::move(args),
                              [=](caf::expected<json> put) mutable {
                                if (!put)
                                  end_fetch(self, j.name, put.error());
                                else
                                  fetch_chunks(self, j, active, std::move(missing), at + 1);
                              });
            });
}

// Stores the owner's active version (`active`: comb.model.active's answer) as this node's
// mirror, fetching the chunks it lacks first (once).
void store_mirror(gateway_ptr self, const mirror_job& j, const json& active, bool fetched) {
  json args{{"name", j.name},
            {"version", active.at("version")},
            {"owner", j.owner},
            {"row", active.at("row")}};
  run_mirror_proc(self, j, "comb.model.mirror", std::move(args), [=](caf::expected<json> r) {
    if (!r) {
      end_fetch(self, j.name, r.error());
      return;
    }
    if (r->value("mirrored", false)) {
      auto& m = self->state.mirrors[j.name];
      m.version = active.at("version").get<uint32_t>();
      m.digest = active.at("row").value("digest", std::string{});
      end_fetch(self, j.name, caf::error{});
      return;
    }
    if (fetched) {
      end_fetch(self, j.name,
                make_error(errc::corrupt_data,
                           "model '" + j.name + "' version " + active.at("version").dump()
                             + " copied from node " + j.owner
                             + " is still not whole here after its chunks were fetched: "
                             + r->dump()));
      return;
    }
    fetch_chunks(self, j, active, r->value("missing", std::vector<int64_t>{}), 0);
  });
}

// Asks the owner for its active version and mirrors it here when this node lacks it.
void check_mirror(gateway_ptr self, const mirror_job& j) {
  ask_owner(self, j, "comb.model.active", json{{"name", j.name}}, [=](caf::expected<json> r) {
    auto& m = self->state.mirrors[j.name];
    if (!r) {
      const auto& e = r.error();
      bool cut_off = e.category() != errc_category || is(e, errc::unavailable)
                     || is(e, errc::timeout);
      // A version never changes: while the owner cannot be reached, the one held here serves
      // (a newer version activated there meanwhile is used once it is reached again).
      end_fetch(self, j.name, m.version != 0 && cut_off ? caf::error{} : owner_error(j, e));
      return;
    }
    if (r->value("version", 0u) == m.version
        && r->at("row").value("digest", std::string{}) == m.digest) {
      end_fetch(self, j.name, caf::error{});
      return;
    }
    store_mirror(self, j, *r, /*fetched=*/false);
  });
}

} // namespace

caf::error authenticate(caf::actor_system& sys, const gateway_actor& gw, const std::string& secret,
                        std::chrono::milliseconds timeout) {
  caf::scoped_actor self{sys};
  caf::error err;
  std::string nonce;
  self->request(gw, timeout, hello_atom::value)
    .receive([&](std::string& n) { nonce = std::move(n); }, [&](caf::error& e) { err = e; });
  if (err || nonce.empty() || secret.empty())
    return err; // a node without a secret, or one that refuses this caller's calls, saying why
  auto proof = runtime::secret_proof(secret, nonce, to_string(sys.node()));
  self->request(gw, timeout, auth_atom::value, std::move(proof))
    .receive([](bool) {}, [&](caf::error& e) { err = e; });
  return err;
}

gateway_actor::behavior_type gateway(gateway_actor::stateful_pointer<gateway_state> self,
                                     runtime::router router, std::string info,
                                     caf::actor dispatcher, std::vector<gateway_peer> peers,
                                     runtime::tls_config tls, gateway_options opts) {
  self->state.router = std::move(router);
  self->state.info = std::move(info);
  self->state.dispatcher = std::move(dispatcher);
  self->state.live_info = std::move(opts.live_info);
  self->state.secret = opts.secret;
  self->state.model_check_interval = opts.model_check_interval;
  self->state.forward_timeout = opts.forward_timeout;
  link_context ctx{self->state.router.self_name(),
                   static_cast<uint32_t>(self->state.router.partitions().size()), std::move(tls),
                   opts.forward_timeout, std::move(opts.secret)};
  for (auto& p : peers) {
    auto name = p.name;
    self->state.peers.emplace(name, self->spawn<caf::linked>(peer_link, std::move(p), ctx));
  }
  // With a shared secret: permission_denied unless the caller is of this process or proved it.
  auto refused = [self]() -> caf::error {
    auto& st = self->state;
    const auto& sender = self->current_sender();
    if (st.secret.empty() || !sender || sender->node() == self->node())
      return caf::none;
    auto who = to_string(sender->node());
    if (st.proven.count(who))
      return caf::none;
    if (st.logged.insert(who).second)
      std::cerr << "comb: node " << st.router.self_name() << ": refused a call from CAF node "
                << who << ": it has not proved the cluster's shared secret\n"
                << std::flush;
    return make_error(errc::permission_denied,
                      "node " + st.router.self_name()
                        + " requires the cluster's shared secret, and this caller has not proved "
                          "it (give --secret-file FILE, or the cluster's config)");
  };
  // The invocation a call's JSON text describes, after the size and shape checks.
  auto parse = [self](std::string& proc, std::string& args,
                      std::string& role) -> caf::expected<runtime::invocation> {
    const auto* def = self->state.router.procs().find(proc);
    if (!def)
      return make_error(errc::unknown_procedure, "no stored procedure named '" + proc + "'");
    auto limit = std::min(def->opts.max_args_bytes, gateway_max_args_bytes);
    if (args.size() > limit)
      return make_error(errc::too_large, proc + ": arguments are " + std::to_string(args.size())
                                           + " bytes, the limit is " + std::to_string(limit));
    runtime::invocation inv;
    inv.procedure = proc;
    inv.role = role;
    inv.sender = "gateway";
    inv.args = nlohmann::json::parse(args, nullptr, /*allow_exceptions=*/false);
    if (inv.args.is_discarded())
      return make_error(errc::invalid_argument, inv.procedure + ": arguments are not valid JSON");
    if (!inv.args.is_object())
      return make_error(errc::invalid_argument, inv.procedure
                                                  + ": arguments must be a JSON object, got "
                                                  + std::string{inv.args.type_name()});
    return inv;
  };
  // A call's invocation and where it runs, once the caller may call and the text is good.
  using routed = std::pair<runtime::invocation, runtime::router::target>;
  auto route = [self, refused, parse](std::string& proc, std::string& args,
                                      std::string& role) -> caf::expected<routed> {
    if (auto err = refused())
      return err;
    auto inv = parse(proc, args, role);
    if (!inv)
      return std::move(inv.error());
    auto target = self->state.router.locate(*inv);
    if (!target)
      return std::move(target.error());
    return routed{std::move(*inv), std::move(*target)};
  };
  // Runs `inv` on this node's state actor `where`, once this node holds a current mirror of
  // the model it names when another node holds that model.
  auto run_local = [self](const actors::state_actor& where,
                          runtime::invocation inv) -> caf::result<std::string> {
    auto job = mirror_needed(self, inv, where);
    if (!job)
      return std::move(job.error());
    auto rp = self->make_response_promise<std::string>();
    if (!*job) {
      deliver_local(self, rp, where, std::move(inv));
      return rp;
    }
    auto& m = self->state.mirrors[(*job)->name];
    if (!m.fetching && m.version != 0
        && clock::now() - m.checked < self->state.model_check_interval) {
      deliver_local(self, rp, where, std::move(inv));
      return rp;
    }
    m.waiting.push_back([self, rp, where, inv](const caf::error& err) mutable {
      if (err)
        rp.deliver(err);
      else
        deliver_local(self, rp, where, std::move(inv));
    });
    if (!m.fetching) {
      m.fetching = true;
      check_mirror(self, **job);
    }
    return rp;
  };
  return {
    [=](call_atom, std::string& proc, std::string& args,
        std::string& role) -> caf::result<std::string> {
      auto call = route(proc, args, role);
      if (!call)
        return std::move(call.error());
      auto& [inv, target] = *call;
      if (target.local)
        return run_local(target.local, std::move(inv));
      auto link = self->state.peers.find(target.owner);
      if (link == self->state.peers.end())
        return make_error(errc::unavailable, proc + ": partition "
                                               + std::to_string(target.partition)
                                               + " is run by node " + target.owner
                                               + ", which this node does not know");
      // The link answers the caller directly.
      auto rp = self->make_response_promise<std::string>();
      rp.delegate(link->second, call_atom::value, std::move(proc), std::move(args), std::move(role),
                  target.partition);
      return rp;
    },
    [=](forwarded_atom, std::string& proc, std::string& args, std::string& role,
        std::string& origin, uint32_t partition, uint32_t partitions) -> caf::result<std::string> {
      auto call = route(proc, args, role);
      if (!call)
        return std::move(call.error());
      auto& [inv, target] = *call;
      const auto& r = self->state.router;
      auto count = static_cast<uint32_t>(r.partitions().size());
      if (partitions == count && target.partition == partition && target.local)
        return run_local(target.local, std::move(inv));
      // Forwarding it again could send it back and forth forever: the configs disagree.
      std::string mine = partitions != count ? "has " + std::to_string(count)
                                                 + " partitions (it hashes the call to "
                                                   "partition "
                                                 + std::to_string(target.partition) + ")"
                         : target.local
                           ? "hashes the call to partition " + std::to_string(target.partition)
                           : "places partition " + std::to_string(partition) + " on node "
                               + target.owner;
      return make_error(
        errc::bad_config,
        proc + ": node " + r.self_name() + " refused a call forwarded by node " + origin + ": "
          + origin + "'s cluster config sends partition " + std::to_string(partition) + " of "
          + std::to_string(partitions) + " to " + r.self_name() + ", but " + r.self_name() + "'s "
          + mine + " (it runs partitions " + runtime::describe_partitions(r.local_partitions())
          + "). The nodes' cluster configs disagree: give every node the same "
            "file. The call was not forwarded again and did not run");
    },
    [=](hello_atom) -> std::string {
      auto& st = self->state;
      if (st.secret.empty())
        return {};
      const auto& sender = self->current_sender();
      if (!sender)
        return {};
      auto nonce = runtime::make_nonce();
      st.nonces[to_string(sender->node())] = nonce;
      return nonce;
    },
    [=](auth_atom, std::string& proof) -> caf::result<bool> {
      auto& st = self->state;
      if (st.secret.empty())
        return true;
      const auto& sender = self->current_sender();
      if (!sender)
        return make_error(errc::permission_denied, "an anonymous caller cannot prove a secret");
      auto who = to_string(sender->node());
      auto i = st.nonces.find(who);
      if (i == st.nonces.end())
        return make_error(errc::permission_denied, "ask node " + st.router.self_name()
                                                     + " for a nonce (hello) before proving");
      auto expected = runtime::secret_proof(st.secret, i->second, who);
      st.nonces.erase(i);
      if (!runtime::same_proof(expected, proof)) {
        std::cerr << "comb: node " << st.router.self_name() << ": refused CAF node " << who
                  << ": wrong shared secret\n"
                  << std::flush;
        return make_error(errc::permission_denied,
                          "node " + st.router.self_name()
                            + " refused this caller's proof: it does not hold the cluster's "
                              "shared secret");
      }
      st.proven.insert(who);
      return true;
    },
    [=](info_atom) -> caf::result<std::string> {
      if (auto err = refused())
        return err;
      auto base = [self] {
        if (!self->state.live_info)
          return self->state.info;
        auto j = nlohmann::json::parse(self->state.info, nullptr, false);
        auto extra = self->state.live_info();
        for (auto& el : extra.items())
          j[el.key()] = el.value();
        return j.dump();
      };
      if (!self->state.dispatcher)
        return base();
      auto rp = self->make_response_promise<std::string>();
      self->request(self->state.dispatcher, std::chrono::seconds{5}, caf::get_atom::value)
        .then(
          [=](std::string& counters) mutable {
            auto j = nlohmann::json::parse(base(), nullptr, false);
            j["outbox"] = nlohmann::json::parse(counters, nullptr, false);
            rp.deliver(j.dump());
          },
          [=](caf::error& e) mutable {
            auto j = nlohmann::json::parse(base(), nullptr, false);
            j["outbox"] = {{"error", "the dispatcher did not answer: " + describe(e)}};
            rp.deliver(j.dump());
          });
      return rp;
    },
  };
}

} // namespace comb::actors
