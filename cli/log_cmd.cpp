// `comb log dump|tail|verify|spool`, `comb replay` and `comb prov ...`: reading, checking,
// spooling and replaying a provenance log, and asking the paper's provenance questions.
#include "cli/commands.hpp"

#include "apps/apps.hpp"
#include "base/errc.hpp"
#include "runtime/provenance/provenance_recorder.hpp"
#include "runtime/provenance/replay.hpp"
#include "runtime/provenance/spooler.hpp"
#include "storage/database.hpp"
#include "storage/provenance_log.hpp"
#include "storage/sql_store.hpp"

#include <charconv>
#include <chrono>
#include <deque>
#include <iostream>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

namespace comb::cli {

namespace {

nlohmann::json to_json(const storage::log_record& r) {
  nlohmann::json j{{"lsn", r.lsn},           {"ts_ns", r.timestamp_ns},
                   {"kind", r.kind_name()},  {"sender", r.sender},
                   {"receiver", r.receiver}, {"execution", r.execution_id},
                   {"parent", r.parent_id},  {"procedure", r.procedure},
                   {"role", r.role},         {"status", r.status}};
  auto payload = nlohmann::json::parse(r.payload, nullptr, false);
  j["payload"] = payload.is_discarded() ? nlohmann::json(r.payload) : payload;
  if (r.kind == storage::log_record::kind_t::invocation) {
    auto res = nlohmann::json::parse(r.result, nullptr, false);
    j["result"] = res.is_discarded() ? nlohmann::json(r.result) : res;
    j["read_only"] = r.read_only;
    j["partition"] = r.partition;
    auto& ch = j["changes"] = nlohmann::json::array();
    for (auto& c : r.changes) {
      nlohmann::json row = nullptr;
      if (c.is_row && !c.value.empty()) {
        row = nlohmann::json::from_msgpack(c.value, true, false);
        if (row.is_discarded())
          row = nullptr;
      }
      ch.push_back({{"table", c.table},
                    {"key", c.key},
                    {"op", c.kind == storage::row_change::op::insert   ? "insert"
                           : c.kind == storage::row_change::op::update ? "update"
                                                                       : "delete"},
                    {"row", row}});
    }
    if (!r.reads.empty()) {
      auto& rd = j["reads"] = nlohmann::json::array();
      for (auto& x : r.reads)
        rd.push_back({{"table", x.table}, {"key", x.key}});
    }
  }
  return j;
}

struct log_opts {
  std::string dir;
  uint64_t from = 0;
  size_t n = 20;
  bool follow = false;
  std::string sqlite;
  std::string data;
};

void dump(const log_opts& o) {
  auto r = storage::log_reader::open(o.dir);
  if (!r)
    fail("log dump", r.error());
  storage::log_stats st;
  auto err = r->for_each(
    o.from,
    [](storage::log_record&& rec) {
      std::cout << to_json(rec).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                << "\n";
      return true;
    },
    &st);
  std::cout << std::flush;
  if (err)
    fail("log dump", err);
  if (st.tail_bytes > 0)
    std::cerr << "comb log dump: note: " << st.tail_bytes
              << " bytes of an incomplete record at the end (" << st.tail_segment << ")\n";
}

void tail(const log_opts& o) {
  auto r = storage::log_reader::open(o.dir);
  if (!r)
    fail("log tail", r.error());
  std::deque<storage::log_record> last;
  uint64_t next = 0;
  auto err = r->for_each(0, [&](storage::log_record&& rec) {
    next = rec.lsn + 1;
    last.push_back(std::move(rec));
    if (last.size() > o.n)
      last.pop_front();
    return true;
  });
  if (err)
    fail("log tail", err);
  for (auto& rec : last)
    std::cout << to_json(rec).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
  std::cout << std::flush;
  while (o.follow) {
    std::this_thread::sleep_for(std::chrono::milliseconds{500});
    auto e = r->for_each(next, [&](storage::log_record&& rec) {
      next = rec.lsn + 1;
      std::cout << to_json(rec).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                << "\n";
      return true;
    });
    std::cout << std::flush;
    if (e)
      fail("log tail", e);
  }
}

void verify(const log_opts& o) {
  auto st = storage::verify_log(o.dir);
  if (!st) {
    std::cout << "FAILED: " << describe(st.error()) << "\n";
    throw CLI::RuntimeError(1);
  }
  std::string end;
  if (!o.data.empty()) {
    // The database says where the log must end (a stopped node's folder, read as it is).
    storage::options so;
    so.create_if_missing = false;
    so.read_only = true;
    so.keep_wal_seconds = runtime::provenance_recorder::keep_wal_seconds;
    auto db = storage::database::open(o.data, so);
    if (!db)
      fail("log verify", db.error());
    auto e = runtime::provenance_recorder::check_log_end(**db, o.dir, st->last_lsn);
    if (!e)
      fail("log verify", e.error());
    if (!e->complete()) {
      std::cout << "FAILED: " << e->describe() << "\n";
      throw CLI::RuntimeError(1);
    }
    end = "; " + e->describe();
  }
  std::cout << "ok: " << st->records << " records in " << st->segments << " segment(s), lsn "
            << st->first_lsn << ".." << st->last_lsn << ", " << st->bytes << " bytes" << end
            << "\n";
}

void spool(const log_opts& o) {
  auto store = storage::sql_store::open(o.sqlite);
  if (!store)
    fail("log spool", store.error());
  // What the apps mark private is masked, as a node's spooler masks it.
  runtime::procedure_registry procs;
  apps::register_all(procs);
  auto privacy = runtime::spool_privacy_of(procs, o.dir);
  if (!privacy)
    fail("log spool", privacy.error());
  if (auto err = (*store)->set_privacy(std::move(*privacy)))
    fail("log spool", err);
  auto n = (*store)->spool(o.dir);
  if (!n)
    fail("log spool", n.error());
  std::cout << "spooled " << *n << " new record(s) into " << storage::sql_store::display(o.sqlite)
            << " (last lsn " << (*store)->last_lsn() << ")\n";
}

struct replay_opts {
  std::string log, into, until, data;
  uint64_t execution = 0;
};

void run_replay(const replay_opts& o) {
  runtime::replay_options ro;
  ro.log_dir = o.log;
  ro.into_dir = o.into;
  ro.execution = o.execution;
  ro.source_data = o.data;
  if (!o.until.empty())
    if (auto err = runtime::parse_until(o.until, ro))
      fail("replay", err, 2);
  runtime::procedure_registry procs;
  apps::register_all(procs);
  auto rep = runtime::replay(procs, ro);
  if (!rep)
    fail("replay", rep.error());
  std::cout << "replayed " << rep->applied << " invocation(s) up to lsn " << rep->last_lsn
            << " into " << o.into << " (" << rep->skipped << " other records skipped)\n"
            << "digest " << rep->digest << "\n";
}

struct prov_opts {
  std::string sqlite;
  std::vector<std::string> args;
};

// The names of a question's arguments: the words of its help before the colon ("TABLE NS").
std::vector<std::string> arg_names(std::string_view help) {
  std::vector<std::string> names;
  std::istringstream in{std::string{help.substr(0, help.find(':'))}};
  for (std::string w; in >> w;)
    names.push_back(w);
  return names;
}

void ask(const std::string& name, const char* sql, size_t nparams, const prov_opts& o,
         std::string_view help = {}) {
  if (o.args.size() != nparams)
    fail("prov " + name,
         make_error(errc::invalid_argument, "expects " + std::to_string(nparams) + " argument(s)"),
         2);
  // A time that is not a number was compared as text and matched nothing (or everything),
  // exit 0: refused instead.
  auto names = arg_names(help);
  for (size_t i = 0; i < o.args.size() && i < names.size(); ++i) {
    if (names[i].size() < 2 || names[i].compare(names[i].size() - 2, 2, "NS") != 0)
      continue;
    const auto& a = o.args[i];
    int64_t v = 0;
    auto [end, ec] = std::from_chars(a.data(), a.data() + a.size(), v);
    if (a.empty() || ec != std::errc{} || end != a.data() + a.size())
      fail("prov " + name,
           make_error(errc::invalid_argument,
                      names[i] + " '" + a
                        + "' is not a time in nanoseconds since the epoch (an integer that fits "
                          "in 64 bits)"),
           2);
  }
  auto store = storage::sql_store::open(o.sqlite, /*read_only=*/true);
  if (!store)
    fail("prov " + name, store.error());
  auto rows = (*store)->query(sql, o.args);
  if (!rows)
    fail("prov " + name, rows.error());
  // A BLOB or non-UTF-8 text column prints with U+FFFD for its invalid bytes, not an exception.
  for (auto& r : *rows)
    std::cout << r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

} // namespace

void add_log_commands(CLI::App& app) {
  auto* log = app.add_subcommand("log", "Read, check and spool a provenance log");
  log->require_subcommand(1);
  auto add = [&](const char* name, const char* help, auto fn) {
    auto o = std::make_shared<log_opts>();
    auto* sub = log->add_subcommand(name, help);
    sub->add_option("--log", o->dir, "The log folder (e.g. DATA/provenance)")->required();
    sub->callback([o, fn] { fn(*o); });
    return std::make_pair(sub, o);
  };
  auto [d, dopt] = add("dump", "Print records as JSON lines", dump);
  d->add_option("--from", dopt->from, "First lsn to print");
  auto [t, topt] = add("tail", "Print the last records", tail);
  t->add_option("-n", topt->n, "How many")->capture_default_str();
  t->add_flag("--follow,-f", topt->follow, "Keep printing new records");
  auto [v, vopt] = add("verify", "Check every segment and record; say what is wrong and where",
                       verify);
  v->add_option("--data", vopt->data,
                "The (stopped) node's data folder: also check that the log ends where the "
                "database says it must, and name the lsns it lacks");
  auto [s, sopt] = add("spool", "Copy the log into an SQL store (idempotent)", spool);
  s->add_option("--sql,--sqlite", sopt->sqlite,
                "The store: a SQLite file, or postgresql://user@host:port/db")
    ->required();

  auto ro = std::make_shared<replay_opts>();
  auto* rp = app.add_subcommand("replay", "Rebuild a database from a provenance log");
  rp->add_option("--log", ro->log, "The log folder")->required();
  rp->add_option("--into", ro->into, "A new folder for the rebuilt database")->required();
  rp->add_option("--until", ro->until,
                 "Stop at an lsn, a UTC time (2026-11-25T07:30:00Z) or <n>ns");
  rp->add_option("--execution", ro->execution, "Stop right after this execution id");
  rp->add_option("--data", ro->data,
                 "The (stopped) node's data folder: refuse a log that ends before the lsn "
                 "this database says it must reach, naming the missing lsns");
  rp->callback([ro] { run_replay(*ro); });

  auto dg = std::make_shared<std::string>();
  auto* digest = app.add_subcommand("digest",
                                    "Print the state digest of a data folder (stopped node)");
  digest->add_option("--data", *dg, "The data folder")->required();
  digest->callback([dg] {
    storage::options opts;
    opts.create_if_missing = false;
    opts.read_only = true; // also a folder on a read-only filesystem
    auto db = storage::database::open(*dg, opts);
    if (!db)
      fail("digest", db.error());
    auto d = (*db)->digest();
    if (!d)
      fail("digest", d.error());
    std::cout << "digest " << *d << "\n";
  });

  auto* prov = app.add_subcommand("prov", "Ask the provenance questions over a spooled SQL store");
  prov->require_subcommand(1);
  struct question {
    const char* name;
    const char* help;
    const char* sql;
    size_t params;
  };
  static const question qs[] = {
    {"last-writer", "TABLE: the last execution that wrote TABLE", storage::prov_sql::last_writer,
     1},
    {"hot-table", "FROM_NS TO_NS: the table with the most row changes",
     storage::prov_sql::most_updated_table, 2},
    {"by-user", "ROLE FROM_NS TO_NS: rows read or written by ROLE", storage::prov_sql::rows_of_user,
     3},
    {"readers", "TABLE KEY: roles that read the row", storage::prov_sql::readers_of_row, 2},
    {"downstream", "TABLE KEY: rows derived from the row", storage::prov_sql::downstream, 2},
    {"upstream", "TABLE KEY: rows the row was derived from", storage::prov_sql::upstream, 2},
    {"at", "TABLE NS: the table's rows as they were at time NS", storage::prov_sql::table_at, 2},
    {"query", "SQL: any read-only SQL over the store", nullptr, 1},
  };
  for (auto& q : qs) {
    auto o = std::make_shared<prov_opts>();
    auto* sub = prov->add_subcommand(q.name, q.help);
    sub
      ->add_option("--sql,--sqlite", o->sqlite,
                   "The store `comb log spool` or a node's spooler writes: a SQLite file, or "
                   "postgresql://user@host:port/db")
      ->required();
    sub->add_option("args", o->args, "Arguments");
    const question* qp = &q;
    sub->callback([o, qp] {
      if (qp->sql)
        ask(qp->name, qp->sql, qp->params, *o, qp->help);
      else if (o->args.size() == 1)
        ask(qp->name, o->args[0].c_str(), 0, prov_opts{o->sqlite, {}});
      else
        fail("prov query", make_error(errc::invalid_argument, "give one SQL statement"), 2);
    });
  }
}

} // namespace comb::cli
