// The console's link to its node (see console_link.hpp).
#include "apps/console/console_link.hpp"

#include "base/errc.hpp"

namespace comb::apps::console {

std::string console_link::node_text() const {
  return node_.to_string();
}

caf::expected<nlohmann::json> console_link::call(const std::string& proc,
                                                 const nlohmann::json& args,
                                                 std::chrono::milliseconds timeout) {
  std::optional<runtime::client> c;
  {
    std::lock_guard<std::mutex> lock{mu_};
    if (!conn_) {
      auto made = runtime::client::connect(sys_, node_,
                                           std::min(timeout, std::chrono::milliseconds{5000}), tls_,
                                           secret_);
      if (!made)
        return make_error(errc::unavailable, "the console's node " + node_text()
                                               + " cannot be reached: " + describe(made.error()));
      conn_ = *made;
    }
    c = conn_;
  }
  auto r = c->call(proc, args.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), role_,
                   timeout);
  if (!r && (is(r.error(), errc::unavailable) || is(r.error(), errc::network_error))) {
    {
      std::lock_guard<std::mutex> lock{mu_};
      conn_.reset();
    }
    return make_error(errc::unavailable,
                      "the console's node " + node_text() + " went away: " + describe(r.error()));
  }
  if (!r && is(r.error(), errc::timeout)
      && describe(r.error()).find(node_text()) == std::string::npos)
    return make_error(errc::timeout,
                      "the console's node " + node_text() + ": " + describe(r.error()));
  return r;
}

} // namespace comb::apps::console
