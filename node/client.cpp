#include "node/client.hpp"

#include "base/errc.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

namespace comb::runtime {

caf::expected<client> client::connect(caf::actor_system& sys, const endpoint& ep) {
  auto gw = sys.middleman().remote_actor<actors::gateway_actor>(ep.host, ep.port);
  if (!gw)
    return make_error(errc::network_error, "cannot reach a Comb node at " + ep.to_string() + ": "
                                             + sys.render(gw.error()));
  return client{sys, *gw};
}

caf::expected<nlohmann::json> client::call(const std::string& proc, const std::string& args,
                                           const std::string& role,
                                           std::chrono::milliseconds timeout) const {
  caf::scoped_actor self{*sys_};
  caf::expected<nlohmann::json> result{nlohmann::json{}};
  self->request(gateway_, timeout, call_atom::value, proc, args, role)
    .receive(
      [&](std::string& text) {
        auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded())
          result = make_error(errc::protocol_error, "node replied with invalid JSON");
        else
          result = std::move(j);
      },
      [&](caf::error& e) { result = std::move(e); });
  return result;
}

caf::expected<std::string> client::info() const {
  caf::scoped_actor self{*sys_};
  caf::expected<std::string> result{std::string{}};
  self->request(gateway_, std::chrono::seconds{10}, info_atom::value)
    .receive([&](std::string& text) { result = std::move(text); },
             [&](caf::error& e) { result = std::move(e); });
  return result;
}

} // namespace comb::runtime
