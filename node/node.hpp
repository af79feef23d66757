// comb::runtime::node: one Comb node in a process, assembled from its config: it opens the
// data folder, adds the runtime's services (model store, outbox) to the apps' procedures,
// creates the tables they declare, opens the provenance recorder, spawns one state actor per
// partition (plus the group committer in sync mode) and the gateway, and, when asked, publishes
// the gateway on a TCP port, starts the outbox dispatcher toward a compute process and spools
// the provenance log into SQLite. The node owns the database; destroying it stops its actors
// first. Member functions are thread-safe.
#pragma once

#include "base/endpoint.hpp"
#include "runtime/interfaces.hpp"
#include "runtime/procedure_registry.hpp"
#include "runtime/provenance/provenance_hook.hpp"
#include "runtime/provenance/provenance_recorder.hpp"
#include "runtime/provenance/spooler.hpp"
#include "runtime/router.hpp"
#include "runtime/tls.hpp"
#include "storage/database.hpp"

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace comb::runtime {

/// Another node of the cluster, as a node needs to know it: where its gateway listens and which
/// partitions it runs.
struct peer_node {
  std::string name;
  endpoint address;
  std::vector<uint32_t> partitions;
};

struct node_config {
  /// Name used in provenance records and logs.
  std::string name = "node1";
  /// The data folder (created when missing).
  std::string data_dir;
  storage::durability durability = storage::durability::sync;
  /// Number of hash partitions of the cluster (a call's partitioning argument is hashed over
  /// it); this node runs a state actor for each partition in `owned`.
  uint32_t partitions = 4;
  /// The partitions this node runs; empty: all of 0..partitions-1 when there are no peers (a
  /// one-node cluster), none otherwise (e.g. a compute node).
  std::vector<uint32_t> owned;
  /// The other nodes of the cluster: calls for their partitions are forwarded to them.
  std::vector<peer_node> peers;
  /// The bound of a call forwarded to another node (the cluster config's forward_timeout):
  /// a peer that does not answer within it gives errc::timeout naming it.
  std::chrono::milliseconds forward_timeout{5000};
  /// The cluster's shared secret (TLS off): callers from other processes, and this node's
  /// peer links, must prove it (actors/gateway.hpp). "": anyone who reaches the port.
  std::string secret;
  /// Publish the gateway on host:port (port 0 picks a free port) when `listen` is true.
  bool listen = false;
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  /// TLS files for the gateway's port (runtime/tls.hpp); all empty: plain TCP. The actor
  /// system must have been configured with the same files (system_config::set_tls).
  tls_config tls;
  /// Provenance log folder; empty: no provenance (unless a hook is passed to start()).
  std::string provenance_dir;
  /// Record the rows each transaction reads as well as those it writes.
  bool record_reads = false;
  /// Start although the provenance log lost records that nothing can rebuild (the loss is
  /// recorded in the log); off: the node refuses to start and names the missing lsns.
  bool accept_log_loss = false;
  /// Arguments longer than this are logged with their long strings (model chunks) as digest
  /// and size (provenance_recorder::options::elide_above); 0: log every byte.
  size_t provenance_elide_bytes = size_t{64} << 10;
  /// SQLite file the provenance log is spooled into, once a second; empty: no spooling.
  std::string spool_file;
  /// A `comb compute` process: when set, the node starts the outbox dispatcher, whose
  /// function actors send committed function calls there.
  std::optional<endpoint> compute;
  /// Without `compute`: start the dispatcher anyway, so that committed calls do not wait in
  /// silence: each fails as unreachable ("no compute process") and, after
  /// compute_give_up, gets that error as its result (`comb node` sets it; off, calls wait
  /// in the outbox for a node started with a compute process).
  bool dispatch_without_compute = false;
  /// A call that cannot reach the compute process fails with the last error after this long
  /// (0: it is tried until it reaches it).
  std::chrono::milliseconds compute_give_up{60000};
  /// Add the runtime's own procedures and tables (model store, outbox) to the apps'.
  bool services = true;
};

class node {
public:
  /// Starts a node. Errors: the data folder's (not_comb_folder, format_mismatch,
  /// storage_error) and the port's (network_error, e.g. "address already in use").
  static caf::expected<std::unique_ptr<node>> start(
    caf::actor_system& sys, node_config cfg, std::shared_ptr<const procedure_registry> procs,
    std::shared_ptr<provenance_hook> hook = nullptr);

  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Routes in-process invocations straight to the state actors.
  const router& route() const { return router_; }

  /// The gateway (what remote clients reach).
  actors::gateway_actor gateway() const { return gateway_; }

  /// The bound port when listening, else 0.
  uint16_t port() const { return port_; }

  const node_config& config() const { return cfg_; }
  storage::database& db() { return *db_; }
  caf::actor_system& system() { return sys_; }

  /// Invokes a procedure and waits for its reply (convenience for tools and tests).
  caf::expected<nlohmann::json> call(const std::string& proc, nlohmann::json args,
                                     const std::string& role,
                                     std::chrono::milliseconds timeout = std::chrono::seconds{60});

  /// A JSON description: name, partitions, durability, procedures, tables. The gateway's
  /// answer adds "outbox" (the dispatcher's counters and the compute connection's state) and
  /// "provenance_lag" (see provenance_lag()).
  std::string info() const;

  /// How far provenance has come, as JSON: the last lsn written to the log, the last one the
  /// spooler put into the SQL store, how many records that is behind and for how long at
  /// most (seconds since the last successful pass, which spooled all the log held then), and
  /// the spooler's last error. Null when provenance is off.
  static nlohmann::json provenance_lag(const provenance_recorder* rec, const spooler* sp);

  /// Stops the actors and unpublishes the port; the database stays open until destruction.
  void stop();

  /// The node's provenance recorder (null when provenance is off or a custom hook is used).
  provenance_recorder* recorder() const { return recorder_.get(); }
  /// Where the node's actors report provenance (null when provenance is off): the outbox
  /// dispatcher and function actors report their messages here too.
  std::shared_ptr<provenance_hook> provenance() const { return hook_; }

private:
  node(caf::actor_system& sys, node_config cfg) : sys_(sys), cfg_(std::move(cfg)) {}

  caf::actor_system& sys_;
  node_config cfg_;
  std::shared_ptr<const procedure_registry> procs_;
  std::unique_ptr<storage::database> db_;
  // Declared after db_ so that it is destroyed (and its writer stopped) before the database.
  std::shared_ptr<provenance_recorder> recorder_;
  std::shared_ptr<provenance_hook> hook_;
  // Shared with the gateway, which reports its progress (provenance lag) in the node's info.
  std::shared_ptr<spooler> spooler_;
  caf::actor dispatcher_;
  actors::committer_actor committer_;
  std::vector<actors::state_actor> partitions_;
  actors::gateway_actor gateway_;
  router router_;
  uint16_t port_ = 0;
  bool stopped_ = false;
};

} // namespace comb::runtime
