#include "actors/gateway.hpp"

#include "base/errc.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <set>

namespace comb::actors {

namespace {

using clock = std::chrono::steady_clock;

/// How long a connect to a peer may take (a peer that accepts and then says nothing).
constexpr auto peer_connect_timeout = std::chrono::seconds{3};
/// Longest wait between connect attempts after failures (the backoff doubles up to it).
constexpr auto peer_max_backoff = std::chrono::milliseconds{2000};
/// A forwarded call's bound; the caller's own timeout is usually shorter.
constexpr auto peer_call_timeout = std::chrono::minutes{10};

struct forwarded_call {
  std::string proc;
  std::string args;
  std::string role;
  uint32_t partition = 0;
  caf::response_promise rp;
};

struct peer_link_state {
  gateway_peer peer;
  runtime::tls_config tls;
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
                        runtime::tls_config tls) {
  self->state.peer = std::move(peer);
  self->state.tls = std::move(tls);
  auto send_call = [self](forwarded_call c) {
    auto id = self->state.next_id++;
    self->state.in_flight.emplace(id, c.rp);
    self
      ->request(self->state.gw, peer_call_timeout, call_atom::value, std::move(c.proc),
                std::move(c.args), std::move(c.role))
      .then(
        [self, id](std::string& r) {
          auto i = self->state.in_flight.find(id);
          if (i == self->state.in_flight.end())
            return;
          i->second.deliver(std::move(r));
          self->state.in_flight.erase(i);
        },
        [self, id, partition = c.partition](caf::error& e) {
          auto i = self->state.in_flight.find(id);
          if (i == self->state.in_flight.end())
            return;
          if (e == caf::sec::request_receiver_down) {
            self->state.last_error = "the connection was lost";
            e = unreachable(self->state, partition);
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
      auto rp = self->make_response_promise<std::string>();
      forwarded_call c{std::move(proc), std::move(args), std::move(role), partition, rp};
      if (st.gw) {
        send_call(std::move(c));
        return rp;
      }
      if (!st.connecting && clock::now() < st.retry_at)
        return unreachable(st, partition); // fail fast during the backoff
      st.waiting.push_back(std::move(c));
      if (st.connecting)
        return rp;
      st.connecting = true;
      // runtime::remote_actor blocks (bounded): a helper of its own makes the connection, so
      // the link keeps answering and failing calls fast meanwhile.
      auto link = caf::actor_cast<caf::actor>(self);
      self->spawn<caf::detached>(
        [link, peer = st.peer, tls = st.tls](caf::event_based_actor* helper) {
          auto gw = runtime::remote_actor<gateway_actor>(helper->home_system(), peer.address.host,
                                                         peer.address.port, peer_connect_timeout,
                                                         tls);
          if (gw)
            helper->send(link, caf::connect_atom::value, *gw);
          else
            helper->send(link, caf::connect_atom::value, describe(gw.error()));
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

} // namespace

gateway_actor::behavior_type gateway(gateway_actor::stateful_pointer<gateway_state> self,
                                     runtime::router router, std::string info,
                                     caf::actor dispatcher, std::vector<gateway_peer> peers,
                                     runtime::tls_config tls) {
  self->state.router = std::move(router);
  self->state.info = std::move(info);
  self->state.dispatcher = std::move(dispatcher);
  for (auto& p : peers) {
    auto name = p.name;
    self->state.peers.emplace(name, self->spawn<caf::linked>(peer_link, std::move(p), tls));
  }
  return {
    [=](call_atom, std::string& proc, std::string& args,
        std::string& role) -> caf::result<std::string> {
      const auto& procs = self->state.router.procs();
      const auto* def = procs.find(proc);
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
      auto target = self->state.router.locate(inv);
      if (!target)
        return std::move(target.error());
      if (!target->local) {
        auto link = self->state.peers.find(target->owner);
        if (link == self->state.peers.end())
          return make_error(errc::unavailable, proc + ": partition "
                                                 + std::to_string(target->partition)
                                                 + " is run by node " + target->owner
                                                 + ", which this node does not know");
        // The link answers the caller directly.
        auto rp = self->make_response_promise<std::string>();
        rp.delegate(link->second, call_atom::value, std::move(proc), std::move(args),
                    std::move(role), target->partition);
        return rp;
      }
      auto rp = self->make_response_promise<std::string>();
      self->request(target->local, caf::infinite, call_atom::value, std::move(inv))
        .then([rp](nlohmann::json& r) mutable { rp.deliver(r.dump()); },
              [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    [=](info_atom) -> caf::result<std::string> {
      if (!self->state.dispatcher)
        return self->state.info;
      auto rp = self->make_response_promise<std::string>();
      self->request(self->state.dispatcher, std::chrono::seconds{5}, caf::get_atom::value)
        .then(
          [=](std::string& counters) mutable {
            auto j = nlohmann::json::parse(self->state.info, nullptr, false);
            j["outbox"] = nlohmann::json::parse(counters, nullptr, false);
            rp.deliver(j.dump());
          },
          [=](caf::error& e) mutable {
            auto j = nlohmann::json::parse(self->state.info, nullptr, false);
            j["outbox"] = {{"error", "the dispatcher did not answer: " + describe(e)}};
            rp.deliver(j.dump());
          });
      return rp;
    },
  };
}

} // namespace comb::actors
