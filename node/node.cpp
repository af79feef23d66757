#include "node/node.hpp"

#include "actors/gateway.hpp"
#include "actors/outbox_dispatcher.hpp"
#include "actors/group_committer.hpp"
#include "actors/state_actor.hpp"
#include "base/errc.hpp"
#include "base/sync_point.hpp"
#include "runtime/pieces/services.hpp"
#include "storage/database.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

namespace comb::runtime {

caf::expected<std::unique_ptr<node>> node::start(caf::actor_system& sys, node_config cfg,
                                                 std::shared_ptr<const procedure_registry> procs,
                                                 std::shared_ptr<provenance_hook> hook) {
  if (cfg.partitions == 0 || cfg.partitions > 1024)
    return make_error(errc::bad_config,
                      "partitions must be 1..1024, got " + std::to_string(cfg.partitions));
  if (cfg.data_dir.empty())
    return make_error(errc::bad_config, "no data folder given");
  std::unique_ptr<node> self{new node(sys, cfg)};
  if (cfg.services) {
    auto all = std::make_shared<procedure_registry>(*procs);
    add_services(*all);
    procs = std::move(all);
  }
  self->procs_ = std::move(procs);
  self->hook_ = std::move(hook);
  storage::options opts;
  opts.mode = cfg.durability;
  if (!cfg.provenance_dir.empty())
    opts.keep_wal_seconds = provenance_recorder::keep_wal_seconds;
  COMB_SYNC_POINT("node.start.recovery"); // the database and provenance log recover next
  auto db = storage::database::open(cfg.data_dir, opts);
  if (!db)
    return std::move(db.error());
  self->db_ = std::move(*db);
  for (auto& t : self->procs_->tables())
    if (auto err = self->db_->create_table(t.name, t.kind))
      return err;
  if (!self->hook_ && !cfg.provenance_dir.empty()) {
    provenance_recorder::options po;
    po.log_dir = cfg.provenance_dir;
    po.record_reads = cfg.record_reads;
    po.accept_log_loss = cfg.accept_log_loss;
    po.elide_above = cfg.provenance_elide_bytes;
    auto rec = provenance_recorder::open(*self->db_, po);
    if (!rec)
      return std::move(rec.error());
    self->recorder_ = *rec;
    self->hook_ = *rec;
  }

  actors::state_env env;
  env.db = self->db_.get();
  env.procs = self->procs_;
  env.hook = self->hook_;
  env.partitions = cfg.partitions;
  env.node_name = cfg.name;
  if (self->db_->syncs_commits()) {
    self->committer_ = sys.spawn<caf::detached>(actors::group_committer, self->db_.get());
    env.committer = self->committer_;
  }
  // Which node runs each partition of the cluster; this node spawns state actors for its own.
  std::vector<std::string> owners(cfg.partitions);
  if (cfg.owned.empty() && cfg.peers.empty()) // a one-node cluster
    for (uint32_t p = 0; p < cfg.partitions; ++p)
      cfg.owned.push_back(p);
  for (auto p : cfg.owned) {
    if (p >= cfg.partitions)
      return make_error(errc::bad_config, "partition " + std::to_string(p) + " is out of range (0.."
                                            + std::to_string(cfg.partitions - 1) + ")");
    owners[p] = cfg.name;
  }
  for (auto& peer : cfg.peers)
    for (auto p : peer.partitions)
      if (p < cfg.partitions && owners[p].empty())
        owners[p] = peer.name;
  for (uint32_t p = 0; p < cfg.partitions; ++p)
    if (owners[p].empty())
      return make_error(errc::bad_config,
                        "partition " + std::to_string(p) + " is run by no node of the cluster");
  self->cfg_.owned = cfg.owned;
  if (cfg.owned.size() < cfg.partitions)
    env.owners = std::make_shared<const std::vector<std::string>>(owners);
  std::vector<actors::state_actor> local(cfg.partitions);
  for (auto p : cfg.owned) {
    local[p] = sys.spawn(actors::state_actor_impl, env, p);
    self->partitions_.push_back(local[p]);
  }
  self->router_ = router{self->procs_, std::move(local), std::move(owners), cfg.name};
  if (cfg.compute || cfg.dispatch_without_compute) {
    actors::dispatcher_config dc;
    dc.has_compute = cfg.compute.has_value();
    if (cfg.compute) {
      dc.function.compute_host = cfg.compute->host;
      dc.function.compute_port = cfg.compute->port;
      dc.function.tls = cfg.tls.enabled(); // a TLS node talks TLS to its compute process too
    }
    dc.give_up_after = cfg.compute_give_up;
    dc.provenance = self->hook_;
    self->dispatcher_ = actors::spawn_outbox_dispatcher(sys, *self->db_, self->router_, dc);
  }
  // Before the gateway, which reports its progress.
  if (!cfg.spool_file.empty() && !cfg.provenance_dir.empty())
    self->spooler_ =
      std::make_shared<spooler>(cfg.provenance_dir, cfg.spool_file, cfg.name, self->procs_);
  // The gateway asks the dispatcher for the compute connection's state when asked for info.
  std::vector<actors::gateway_peer> peers;
  for (auto& p : cfg.peers)
    peers.push_back({p.name, p.address});
  actors::gateway_options go;
  go.forward_timeout = cfg.forward_timeout;
  go.secret = cfg.secret;
  if (self->recorder_)
    go.live_info = [rec = self->recorder_, sp = self->spooler_] {
      return nlohmann::json{{"provenance_lag", provenance_lag(rec.get(), sp.get())}};
    };
  self->gateway_ = sys.spawn(actors::gateway, self->router_, self->info(), self->dispatcher_,
                             std::move(peers), cfg.tls, std::move(go));
  if (cfg.listen) {
    // SO_REUSEADDR, so that a node restarted after a crash binds at once although the dead
    // node's connections linger in TIME_WAIT; on Linux it still refuses a port that another
    // socket listens on (tests/node/restart_test.cpp checks both).
    auto port = publish(sys, self->gateway_, cfg.host, cfg.port, /*reuse=*/true, cfg.tls);
    if (!port) {
      self->stop();
      return make_error(errc::network_error,
                        "cannot listen on " + cfg.host + ":" + std::to_string(cfg.port) + ": "
                          + sys.render(port.error())
                          + " (is the port already in use by another process?)");
    }
    self->port_ = *port;
  }
  return self;
}

node::~node() {
  stop();
}

void node::stop() {
  if (stopped_)
    return;
  stopped_ = true;
  if (port_ != 0)
    sys_.middleman().unpublish(gateway_, port_);
  caf::scoped_actor self{sys_};
  if (dispatcher_) {
    // The dispatcher reads the database and calls the state actors: it stops first.
    self->send_exit(dispatcher_, caf::exit_reason::user_shutdown);
    self->wait_for(dispatcher_);
  }
  size_t n = 0;
  auto kill = [&](const auto& h) {
    if (!h)
      return;
    self->monitor(h);
    self->send_exit(h, caf::exit_reason::user_shutdown);
    ++n;
  };
  kill(gateway_);
  for (auto& p : partitions_)
    kill(p);
  kill(committer_);
  for (size_t i = 0; i < n; ++i)
    self->receive([](const caf::down_msg&) {});
  if (recorder_)
    recorder_->close();
  spooler_.reset(); // a last pass after the log is closed
}

caf::expected<nlohmann::json> node::call(const std::string& proc, nlohmann::json args,
                                         const std::string& role,
                                         std::chrono::milliseconds timeout) {
  invocation inv;
  inv.procedure = proc;
  inv.args = std::move(args);
  inv.role = role;
  inv.sender = "local";
  auto where = router_.locate(inv);
  if (!where)
    return std::move(where.error());
  caf::scoped_actor self{sys_};
  caf::expected<nlohmann::json> result{nlohmann::json{}};
  if (!where->local) { // another node's partition: through the gateway, which forwards it
    self->request(gateway_, timeout, call_atom::value, proc, inv.args.dump(), role)
      .receive(
        [&](std::string& r) {
          result = nlohmann::json::parse(r, nullptr, /*allow_exceptions=*/false);
        },
        [&](caf::error& e) { result = std::move(e); });
    return result;
  }
  self->request(where->local, timeout, call_atom::value, std::move(inv))
    .receive([&](nlohmann::json& r) { result = std::move(r); },
             [&](caf::error& e) { result = std::move(e); });
  return result;
}

nlohmann::json node::provenance_lag(const provenance_recorder* rec, const spooler* sp) {
  if (!rec)
    return nullptr;
  auto written = rec->written_lsn();
  nlohmann::json j{{"written_lsn", written}};
  if (!sp) {
    j["spooled_lsn"] = nullptr; // this node does not spool (no spooler role, or --spool none)
    return j;
  }
  auto st = sp->current();
  auto behind = written > st.spooled_lsn ? written - st.spooled_lsn : 0;
  j["spooled_lsn"] = st.spooled_lsn;
  j["behind"] = behind;
  if (st.last_pass.time_since_epoch().count() != 0) {
    auto since = std::chrono::duration<double>(std::chrono::system_clock::now() - st.last_pass);
    j["last_pass_s"] = since.count();
    // What was written after the last pass began waits for the next: at most that old.
    j["lag_s"] = behind == 0 ? 0.0 : since.count();
  } else {
    j["last_pass_s"] = nullptr;
    j["lag_s"] = nullptr;
  }
  if (!st.error.empty())
    j["error"] = st.error;
  return j;
}

std::string node::info() const {
  nlohmann::json j;
  j["name"] = cfg_.name;
  j["partitions"] = cfg_.partitions;
  j["owned"] = describe_partitions(cfg_.owned);
  j["peers"] = nlohmann::json::array();
  for (auto& p : cfg_.peers)
    j["peers"].push_back({{"name", p.name},
                          {"address", p.address.to_string()},
                          {"partitions", describe_partitions(p.partitions)}});
  j["durability"] = storage::to_string(cfg_.durability);
#ifdef COMB_VERSION
  j["version"] = COMB_VERSION;
#endif
  if (!cfg_.provenance_dir.empty())
    j["provenance"] = {{"log", cfg_.provenance_dir}, {"spool", cfg_.spool_file}};
  j["data_dir"] = cfg_.data_dir;
  j["procedures"] = procs_ ? procs_->names() : std::vector<std::string>{};
  j["tables"] = db_ ? db_->tables() : std::vector<std::string>{};
  return j.dump();
}

} // namespace comb::runtime
