// The Nectar server's reconnecting link to its node (see node_link.hpp).
#include "apps/nectar/node_link.hpp"

#include "base/errc.hpp"
#include "runtime/atoms.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <unordered_map>

namespace comb::nectar {

namespace {

/// The caller's calls waiting for the gateway's reply, by a number of its own.
struct caller_state {
  std::unordered_map<uint64_t, caf::typed_response_promise<std::string>> pending;
  uint64_t next = 0;
};

/// Answers every waiting call with `e`.
void fail_all(caf::stateful_actor<caller_state>* self, const caf::error& e) {
  for (auto& [id, rp] : self->state.pending)
    rp.deliver(e);
  self->state.pending.clear();
}

/// Sends each (call, proc, args, role, timeout ms) to `gw` and answers with its reply. It
/// monitors `gw`: CAF 0.17 does not fail a pending request when the connection to the node
/// drops (it kills the node's proxies, and the request waits for its timeout), so when the
/// gateway's proxy dies every waiting call gets request_receiver_down at once (the link says
/// "lost") and the caller ends; the next call connects again.
caf::behavior caller(caf::stateful_actor<caller_state>* self, actors::gateway_actor gw) {
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
    [self, gw](call_atom, std::string& proc, std::string& args, std::string& role,
               int64_t timeout_ms) -> caf::result<std::string> {
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
      self
        ->request(gw, std::chrono::milliseconds{timeout_ms}, call_atom::value, std::move(proc),
                  std::move(args), std::move(role))
        .then([answer](std::string& text) { answer(std::move(text)); },
              [answer](caf::error& e) { answer(std::move(e)); });
      return rp;
    },
  };
}

} // namespace

node_link::~node_link() {
  std::lock_guard<std::mutex> guard{mu_};
  if (conn_)
    caf::anon_send_exit(conn_->caller, caf::exit_reason::user_shutdown);
}

caf::expected<node_link::connection> node_link::get(std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> guard{mu_};
  if (conn_)
    return *conn_;
  auto c = runtime::client::connect(sys_, ep_, std::min(timeout, std::chrono::milliseconds{5000}),
                                    tls_, secret_);
  if (!c)
    return c.error();
  conn_ = connection{*c, sys_.spawn(caller, c->gateway())};
  return *conn_;
}

void node_link::drop(const connection& c) {
  std::lock_guard<std::mutex> guard{mu_};
  if (conn_ && conn_->caller == c.caller) {
    caf::anon_send_exit(conn_->caller, caf::exit_reason::user_shutdown);
    conn_.reset();
  }
}

caf::expected<nlohmann::json> node_link::call(const std::string& proc, const nlohmann::json& args,
                                              std::chrono::milliseconds timeout) {
  auto c = get(timeout);
  if (!c)
    return c.error();
  auto text = args.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  caf::expected<std::string> reply{std::string{}};
  {
    caf::scoped_actor self{sys_};
    // The caller always answers (its request has a timeout); the bound only guards the wait.
    self
      ->request(c->caller, timeout + std::chrono::seconds{10}, call_atom::value, proc,
                std::move(text), role_, static_cast<int64_t>(timeout.count()))
      .receive([&](std::string& t) { reply = std::move(t); },
               [&](caf::error& e) { reply = std::move(e); });
  }
  caf::expected<nlohmann::json> r{nlohmann::json{}};
  if (!reply && reply.error() == caf::sec::request_receiver_down)
    r = make_error(errc::unavailable,
                   "lost the connection to the Comb node at " + ep_.to_string() + " while " + proc
                     + " was in flight: it may or may not have committed. Check before "
                       "retrying: once the node is back, look for the call's effect, or repeat "
                       "it with the same idempotency id");
  else if (!reply && reply.error() == caf::sec::request_timeout)
    r = make_error(errc::timeout, "no reply from the Comb node at " + ep_.to_string() + " within "
                                    + std::to_string(timeout.count()) + " ms for " + proc
                                    + ": it may or may not have committed");
  else if (!reply)
    r = std::move(reply.error());
  else if (auto j = nlohmann::json::parse(*reply, nullptr, /*allow_exceptions=*/false);
           j.is_discarded())
    r = make_error(errc::protocol_error, "node replied with invalid JSON");
  else
    r = std::move(j);
  if (!r && (is(r.error(), errc::unavailable) || is(r.error(), errc::network_error)))
    drop(*c);
  return r;
}

bool is_transient(const caf::error& e) {
  return is(e, errc::unavailable) || is(e, errc::network_error) || is(e, errc::timeout)
         || is(e, errc::overloaded) || is(e, errc::conflict);
}

} // namespace comb::nectar
