#include "node/client.hpp"

#include "actors/gateway.hpp"
#include "base/errc.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

namespace comb::runtime {

namespace {

/// True when `e` says the request's receiver was gone (a proxy already dead when asked).
bool receiver_gone(const caf::error& e) {
  return e == caf::sec::request_receiver_down;
}

/// Sends `xs` to the gateway `gw` and waits for its text reply. CAF 0.17 does not fail a
/// pending request when the connection to a remote node drops (it kills the node's proxies
/// and the request waits for its timeout), so a helper actor makes the request and also
/// monitors `gw`: when the proxy dies first, the result is `lost` at once. Otherwise the
/// reply, the node's error, or request_timeout after `timeout`.
template <class... Ts>
caf::expected<std::string> ask(caf::actor_system& sys, const actors::gateway_actor& gw,
                               std::chrono::milliseconds timeout, const caf::error& lost,
                               Ts... xs) {
  caf::scoped_actor self{sys};
  auto reply_to = caf::actor_cast<caf::actor>(self);
  sys.spawn([=](caf::event_based_actor* helper) {
    helper->monitor(gw);
    helper->set_down_handler([=](caf::down_msg&) {
      helper->send(reply_to, lost);
      helper->quit();
    });
    helper->request(gw, timeout, xs...)
      .then(
        [=](std::string& text) {
          helper->send(reply_to, std::move(text));
          helper->quit();
        },
        [=](caf::error& e) {
          helper->send(reply_to, receiver_gone(e) ? lost : std::move(e));
          helper->quit();
        });
  });
  caf::expected<std::string> result{std::string{}};
  // The helper always answers (its request has a timeout); the bound only guards the wait.
  self->receive([&](std::string& text) { result = std::move(text); },
                [&](caf::error& e) { result = std::move(e); },
                caf::after(timeout + std::chrono::seconds{10}) >>
                  [&] { result = make_error(caf::sec::request_timeout); });
  return result;
}

} // namespace

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
        "is back, look for the call's effect, or repeat it with the same idempotency id (e.g. "
        "bank.transfer's \"id\"), which a committed call refuses with already_exists");
  auto text = ask(*sys_, gateway_, timeout, lost, call_atom::value, proc, args, role);
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
  return ask(*sys_, gateway_, std::chrono::seconds{10}, lost, info_atom::value);
}

} // namespace comb::runtime
