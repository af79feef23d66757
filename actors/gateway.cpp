#include "actors/gateway.hpp"

#include "base/errc.hpp"

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

namespace comb::actors {

gateway_actor::behavior_type gateway(gateway_actor::stateful_pointer<gateway_state> self,
                                     runtime::router router, std::string info,
                                     caf::actor dispatcher) {
  self->state.router = std::move(router);
  self->state.info = std::move(info);
  self->state.dispatcher = std::move(dispatcher);
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
