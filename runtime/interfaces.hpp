// The typed message interfaces of Comb's core actors. Header only.
#pragma once

#include "runtime/atoms.hpp"
#include "runtime/invocation.hpp"

#include <caf/replies_to.hpp>
#include <caf/all.hpp>

#include <string>

namespace comb::actors {

/// A state actor: runs the stored procedures of one partition, one at a time, in arrival
/// order, each as one transaction. Replies with the procedure's JSON result. A batch of
/// invocations (each still its own invocation, with its own execution id) may commit in one
/// transaction; the reply holds each one's outcome, in order (actors/state_actor.hpp).
using state_actor =
  caf::typed_actor<caf::replies_to<call_atom, runtime::invocation>::with<nlohmann::json>,
                   caf::replies_to<call_atom, std::vector<runtime::invocation>>::with<
                     std::vector<runtime::invocation_outcome>>>;

/// The group committer: replies with the value it was given once the WAL is on disk.
using committer_actor = caf::typed_actor<
  caf::replies_to<sync_atom, nlohmann::json>::with<nlohmann::json>, caf::reacts_to<flush_atom>>;

/// The gateway: the node's entry point for remote clients. Arguments and results travel as
/// JSON text (procedure, args, role) so that they cross process boundaries as plain strings.
/// A forwarded call also carries the forwarding node's name, the partition it chose and its
/// partition count (procedure, args, role, origin, partition, partitions). With a shared
/// secret (TLS off), a caller first asks for a nonce (hello) and proves the secret (auth).
using gateway_actor = caf::typed_actor<
  caf::replies_to<call_atom, std::string, std::string, std::string>::with<std::string>,
  caf::replies_to<forwarded_atom, std::string, std::string, std::string, std::string, uint32_t,
                  uint32_t>::with<std::string>,
  caf::replies_to<hello_atom>::with<std::string>,
  caf::replies_to<auth_atom, std::string>::with<bool>,
  caf::replies_to<info_atom>::with<std::string>>;

} // namespace comb::actors
