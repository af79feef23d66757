// comb::actors::function_actor: a stateless function of the paper (Figure 1). It has no
// database handle (nothing here can name a storage::transaction): it takes a task_request,
// splits the payload into Cap'n Proto pieces of at most 1 MiB, sends them to the compute actor
// of a `comb compute` process over TCP (CAF middleman, remote actor) with a bounded window of
// pieces in flight, and replies with the task's result (on one host, a whole task's bytes go
// through shared memory instead: function_config::shared_memory, and that message and its
// reply over the compute process's local link, a Unix socket, instead of CAF's middleman:
// function_config::local_link). Many function actors run at once and may contribute pieces to
// one task. When the compute process dies, in-flight tasks get an error internally and are sent
// again once it is back, at most max_attempts times; a full pool (errc::overloaded) makes it
// resend the piece after a pause. Talk to it by messages.
#pragma once

#include "runtime/pieces/compute_types.hpp"
#include "runtime/provenance/provenance_hook.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace comb::actors {

struct function_config {
  /// Where the compute process listens.
  std::string compute_host = "127.0.0.1";
  uint16_t compute_port = 0;
  /// Pieces of one task in flight at once (CAF 0.17's middleman moves large messages fastest
  /// with little queued; see perf/pieces).
  uint32_t window = 2;
  /// Times a task is sent in all when the compute process is unreachable or dies, and
  /// silences of request_timeout a task may have (>= 1).
  uint32_t max_attempts = 10;
  /// Pause before reconnecting / resending after the compute process went away.
  std::chrono::milliseconds retry_delay{200};
  /// Pause before resending a piece the pool refused as overloaded, and how often.
  std::chrono::milliseconds overload_delay{10};
  uint32_t max_overload_retries = 6000;
  /// Backstop for a task whose pieces are in flight: when no reply came for this long, that
  /// counts as an attempt and the task waits on (the compute process usually answers at
  /// once); it is not sent again over a connection that is up, where the resent pieces would
  /// come behind the first ones as duplicates. Checked by one timer per actor, not per piece:
  /// a CAF request timeout on every piece woke CAF's clock thread twice per piece.
  std::chrono::milliseconds request_timeout{60000};
  /// The same backstop once every piece of a task is sent and answered but the one whose
  /// reply is the task's result: the compute process is running the task (a training epoch
  /// on a busy machine takes minutes), so only this much silence counts as lost.
  std::chrono::milliseconds result_timeout{1800000};
  /// Provenance: every piece sent and every reply is reported here (null: not recorded).
  std::shared_ptr<runtime::provenance_hook> provenance;
  /// This actor's name in provenance records.
  std::string name = "function";
  /// Reach the compute process over TLS with mutual authentication, through the actor
  /// system's OpenSSL module (runtime::system_config::set_tls); the compute process must
  /// serve TLS too (`comb compute --tls-*`).
  bool tls = false;
  /// On one host (a compute process on a loopback address), send each whole task of at least
  /// shared_memory_min bytes through a shared-memory segment this actor owns, with only a
  /// descriptor over the connection (runtime/pieces/shm_pieces.hpp): two copies of the bytes
  /// instead of about six. When the compute process cannot open the segment (it is on
  /// another host behind a forwarded port, another user, an older `comb compute`), this
  /// actor says so once on stderr and sends pieces over TCP from then on. The environment
  /// variable COMB_PIECES_SHM=off turns it off (for measurements).
  bool shared_memory = true;
  size_t shared_memory_min = size_t{32} << 10;
  /// The segment's capacity; a task that does not fit the free space goes over TCP.
  size_t shared_memory_bytes = size_t{64} << 20;
  /// Where shared memory is used: a task whose bytes are one pinned blob of the node's blob
  /// store (task_request::source with a file) of at least shared_memory_min bytes goes as one
  /// message naming the blob's segment file, and the compute process reads the bytes from
  /// there (runtime/pieces/blob_file_pieces.hpp): this actor reads nothing. A compute
  /// process that cannot open the file turns it off (said once on stderr).
  /// COMB_PIECES_BLOB_FILES=off turns it off (for measurements).
  bool blob_files = true;
  /// Where shared memory or blob files are used: send those tasks' messages (and get their
  /// results) over the compute process's local link, a Unix socket, instead of through CAF's
  /// middleman (runtime/pieces/local_link.hpp). COMB_LOCAL_LINK=off turns it off.
  bool local_link = true;
};

/// Spawns a function actor. Handles (run_atom, task_request) -> task_result: for a whole
/// task (first_piece 0, piece_count 0) the result of the task; for a share of a task sent
/// by several actors, complete = true with the result in the actor whose piece completed
/// the task, complete = false in the others. Errors name the task and what went wrong.
caf::actor spawn_function_actor(caf::actor_system& sys, function_config cfg);

} // namespace comb::actors
