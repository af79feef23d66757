#include "node/client.hpp"

#include "actors/gateway.hpp"
#include "base/errc.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include <cstdint>
#include <unordered_map>

namespace comb::runtime {

namespace {

/// The calls waiting for the gateway's reply, by a number of the caller's own.
struct caller_state {
  std::unordered_map<uint64_t, caf::typed_response_promise<std::string>> pending;
  uint64_t next = 0;
  static inline const char* name = "comb.client";
};

using caller_actor = caf::stateful_actor<caller_state>;

/// Answers every waiting call with `e`.
void fail_all(caller_actor* self, const caf::error& e) {
  for (auto& [id, rp] : self->state.pending)
    rp.deliver(e);
  self->state.pending.clear();
}

/// Sends the request `xs` to `gw` with `timeout` and answers the call with its reply.
template <class... Ts>
caf::result<std::string> forward(caller_actor* self, const actors::gateway_actor& gw,
                                 int64_t timeout_ms, Ts&&... xs) {
  auto rp = self->make_response_promise<std::string>();
  auto id = self->state.next++;
  self->state.pending.emplace(id, rp);
  auto answer = [self, id](auto&& x) {
    auto i = self->state.pending.find(id);
    if (i == self->state.pending.end())
      return; // answered when the gateway went down
    i->second.deliver(std::forward<decltype(x)>(x));
    self->state.pending.erase(i);
  };
  self->request(gw, std::chrono::milliseconds{timeout_ms}, std::forward<Ts>(xs)...)
    .then([answer](std::string& text) { answer(std::move(text)); },
          [answer](caf::error& e) { answer(std::move(e)); });
  return rp;
}

/// One connection's caller: sends each call to the gateway `gw` and answers with its reply.
/// It monitors `gw`: CAF 0.17 does not fail a pending request when the connection to a remote
/// node drops (it kills the node's proxies, and the request waits for its timeout), so when
/// the gateway's proxy dies every waiting call gets request_receiver_down at once and the
/// caller ends (a later call to it gets the same at once).
caf::behavior caller(caller_actor* self, actors::gateway_actor gw) {
  self->monitor(gw);
  self->set_down_handler([self](caf::down_msg&) {
    fail_all(self, make_error(caf::sec::request_receiver_down));
    self->quit();
  });
  self->set_exit_handler([self](caf::exit_msg& m) {
    fail_all(self, make_error(caf::sec::request_receiver_down));
    self->quit(m.reason);
  });
  return {
    [self, gw](call_atom a, std::string& proc, std::string& args, std::string& role,
               int64_t timeout_ms) {
      return forward(self, gw, timeout_ms, a, std::move(proc), std::move(args), std::move(role));
    },
    [self, gw](info_atom a, int64_t timeout_ms) { return forward(self, gw, timeout_ms, a); },
  };
}

} // namespace

struct client::link {
  explicit link(caf::actor a) : caller(std::move(a)) {}
  link(const link&) = delete;
  link& operator=(const link&) = delete;
  ~link() { caf::anon_send_exit(caller, caf::exit_reason::user_shutdown); }
  caf::actor caller;
};

client::client(caf::actor_system& sys, actors::gateway_actor gw, endpoint ep)
  : sys_(&sys), gateway_(gw), ep_(std::move(ep)),
    link_(std::make_shared<const link>(sys.spawn(caller, gw))) {}

/// Sends `xs` through the connection's caller and waits for the text reply: the reply, the
/// node's error, `lost` when the connection to the node is gone (at once, not a timeout), or
/// request_timeout after `timeout`.
template <class... Ts>
caf::expected<std::string> client::ask(std::chrono::milliseconds timeout, const caf::error& lost,
                                       Ts&&... xs) const {
  caf::expected<std::string> result{std::string{}};
  caf::scoped_actor self{*sys_};
  // The caller always answers (its request has a timeout); the bound only guards the wait.
  self
    ->request(link_->caller, timeout + std::chrono::seconds{10}, std::forward<Ts>(xs)...,
              static_cast<int64_t>(timeout.count()))
    .receive([&](std::string& text) { result = std::move(text); },
             [&](caf::error& e) {
               result = e == caf::sec::request_receiver_down ? lost : std::move(e);
             });
  return result;
}

caf::expected<client> client::connect(caf::actor_system& sys, const endpoint& ep,
                                      std::chrono::milliseconds timeout, const tls_config& tls,
                                      const std::string& secret) {
  auto gw = remote_actor<actors::gateway_actor>(sys, ep.host, ep.port, timeout, tls);
  if (!gw) {
    if (is(gw.error(), errc::protocol_error))
      return make_error(errc::protocol_error,
                        "the actor published at " + ep.to_string()
                          + " is not a Comb node's gateway (a compute process, or another "
                            "version of Comb?)");
    return std::move(gw.error());
  }
  if (auto err = actors::authenticate(sys, *gw, secret, timeout))
    return err; // permission_denied naming the node when it refused the proof
  return client{sys, std::move(*gw), ep};
}

caf::expected<nlohmann::json> client::call(const std::string& proc, const std::string& args,
                                           const std::string& role,
                                           std::chrono::milliseconds timeout) const {
  auto lost = make_error(
    errc::unavailable,
    "lost the connection to the Comb node at " + ep_.to_string() + " while " + proc
      + " was in flight: it may or may not have committed. Check before retrying: once the node "
        "is back, look for the call's effect, or repeat it with the same idempotency id (such "
        "as bank.transfer's \"id\"), which a committed call refuses with already_exists");
  auto text = ask(timeout, lost, call_atom::value, proc, args, role);
  if (!text && text.error() == caf::sec::request_timeout)
    return make_error(errc::timeout,
                      "no reply from the Comb node at " + ep_.to_string() + " within "
                        + std::to_string(timeout.count()) + " ms for " + proc
                        + ": it may or may not have committed (the node, or a node it forwards "
                          "to, is slow or unreachable). Check before retrying: look for the "
                          "call's effect, or repeat it with the same idempotency id");
  if (!text)
    return std::move(text.error());
  auto j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return make_error(errc::protocol_error, "node replied with invalid JSON");
  return j;
}

caf::expected<std::string> client::info() const {
  auto lost = make_error(errc::unavailable,
                         "lost the connection to the Comb node at " + ep_.to_string());
  return ask(std::chrono::seconds{10}, lost, info_atom::value);
}

} // namespace comb::runtime
