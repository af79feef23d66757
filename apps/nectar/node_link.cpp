// The Nectar server's reconnecting link to its node (see node_link.hpp).
#include "apps/nectar/node_link.hpp"

#include "base/errc.hpp"

namespace comb::nectar {

node_link::~node_link() = default;

std::optional<runtime::client> node_link::get(std::chrono::milliseconds timeout,
                                              caf::error& why) {
  std::lock_guard<std::mutex> guard{mu_};
  if (conn_)
    return conn_;
  auto c = runtime::client::connect(sys_, ep_, std::min(timeout, std::chrono::milliseconds{5000}),
                                    tls_, secret_);
  if (!c) {
    why = std::move(c.error());
    return std::nullopt;
  }
  conn_ = std::move(*c);
  return conn_;
}

void node_link::drop(const runtime::client& c) {
  std::lock_guard<std::mutex> guard{mu_};
  if (conn_ && conn_->same_connection(c))
    conn_.reset();
}

caf::expected<nlohmann::json> node_link::call(const std::string& proc, const nlohmann::json& args,
                                              std::chrono::milliseconds timeout) {
  caf::error why;
  auto c = get(timeout, why);
  if (!c)
    return why;
  auto text = args.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto r = c->call(proc, text, role_, timeout);
  if (!r && (is(r.error(), errc::unavailable) || is(r.error(), errc::network_error)))
    drop(*c);
  return r;
}

bool is_transient(const caf::error& e) {
  return is(e, errc::unavailable) || is(e, errc::network_error) || is(e, errc::timeout)
         || is(e, errc::overloaded) || is(e, errc::conflict);
}

} // namespace comb::nectar
