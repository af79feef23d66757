#include "actors/gateway.hpp"

#include "base/errc.hpp"

namespace comb::actors {

gateway_actor::behavior_type gateway(gateway_actor::stateful_pointer<gateway_state> self,
                                     runtime::router router, std::string info) {
  self->state.router = std::move(router);
  self->state.info = std::move(info);
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
      inv.procedure = std::move(proc);
      inv.role = std::move(role);
      inv.sender = "gateway";
      inv.args = nlohmann::json::parse(args, nullptr, /*allow_exceptions=*/false);
      if (inv.args.is_discarded())
        return make_error(errc::invalid_argument, inv.procedure + ": arguments are not valid JSON");
      if (!inv.args.is_object())
        return make_error(errc::invalid_argument, inv.procedure
                                                    + ": arguments must be a JSON object, got "
                                                    + std::string{inv.args.type_name()});
      auto target = self->state.router.route(inv);
      if (!target)
        return std::move(target.error());
      auto rp = self->make_response_promise<std::string>();
      self->request(*target, caf::infinite, call_atom::value, std::move(inv))
        .then([rp](nlohmann::json& r) mutable { rp.deliver(r.dump()); },
              [rp](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
    [=](info_atom) -> std::string { return self->state.info; },
  };
}

} // namespace comb::actors
