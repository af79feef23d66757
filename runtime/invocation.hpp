// comb::runtime::invocation: one call of a stored procedure as it travels from a client or
// the gateway to a state actor inside one process. Plain value type.
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/error.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace comb::runtime {

struct invocation {
  /// Registered procedure name, e.g. "bank.transfer".
  std::string procedure;
  /// Arguments, a JSON object.
  nlohmann::json args;
  /// The caller's role; the procedure's role list decides whether it may run.
  std::string role;
  /// The execution that caused this one (0 for a top-level call).
  uint64_t parent_id = 0;
  /// Who sent it, for provenance ("client", "gateway", an actor name).
  std::string sender;
};

/// What one invocation of a batch (a state actor's call_atom with several invocations) came
/// to: its result, or its error (when `error` is set, `result` is null).
struct invocation_outcome {
  nlohmann::json result;
  caf::error error;
};

} // namespace comb::runtime

// In-process messages only: the gateway turns remote calls (plain strings) into these.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(comb::runtime::invocation)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(nlohmann::json)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<comb::runtime::invocation>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<comb::runtime::invocation_outcome>)
