// The Nectar server's reconnecting link to its node (see node_link.hpp).
#include "apps/nectar/node_link.hpp"

#include "base/errc.hpp"

namespace comb::nectar {

caf::expected<runtime::client> node_link::get(std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> guard{mu_};
  if (client_)
    return *client_;
  auto c = runtime::client::connect(sys_, ep_, std::min(timeout, std::chrono::milliseconds{5000}),
                                    tls_, secret_);
  if (!c)
    return c.error();
  client_ = *c;
  return *c;
}

caf::expected<nlohmann::json> node_link::call(const std::string& proc, const nlohmann::json& args,
                                              std::chrono::milliseconds timeout) {
  auto c = get(timeout);
  if (!c)
    return c.error();
  auto r = c->call(proc, args.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), role_,
                   timeout);
  if (!r && (is(r.error(), errc::unavailable) || is(r.error(), errc::network_error))) {
    std::lock_guard<std::mutex> guard{mu_};
    client_.reset();
  }
  return r;
}

bool is_transient(const caf::error& e) {
  return is(e, errc::unavailable) || is(e, errc::network_error) || is(e, errc::timeout)
         || is(e, errc::overloaded) || is(e, errc::conflict);
}

} // namespace comb::nectar
