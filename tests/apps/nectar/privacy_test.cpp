// apps.nectar.privacy: credentials stay out of the SQL store that every console user reads
// with raw SQL. A node (all apps, provenance on, spooling into SQLite) and Nectar's server in
// this process; a user registers, posts, logs out and in again over HTTP with a session
// cookie, and a console account is set and read. The log keeps the password hash and the
// session keys (replay needs them, and replay still gives the node's digest); the store, read
// as the console's Search reads it, holds none of them, nor the cookie's token, nor the
// password, in any column of any table: the spooler masks what the apps mark private, and
// the capture masks cookie values and password fields. Masks of one value are equal, so a
// session's calls still join to its row.
#include "apps/apps.hpp"
#include "apps/console/readonly_sql.hpp"
#include "apps/nectar/credentials.hpp"
#include "apps/nectar/server.hpp"
#include "node/node.hpp"
#include "runtime/provenance/replay.hpp"
#include "runtime/system_config.hpp"
#include "storage/database.hpp"
#include "storage/provenance_log.hpp"
#include "tests/apps/nectar/nectar_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>

using namespace comb;
using nlohmann::json;

namespace {

bool has(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

/// Every row of every table of the store, as the console's raw SQL reads them.
std::map<std::string, apps::console::query_result> everything(const std::string& file) {
  auto db = test::must(apps::console::readonly_db::open(file));
  apps::console::query_limits lim;
  lim.max_rows = 1'000'000;
  auto names = test::must(
    db->run("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", json::array(), lim));
  std::map<std::string, apps::console::query_result> out;
  for (auto& n : names.rows) {
    auto t = n[0].get<std::string>();
    out[t] = test::must(db->run("SELECT * FROM \"" + t + "\"", json::array(), lim));
    REQUIRE_FALSE(out[t].truncated);
  }
  return out;
}

} // namespace

TEST_SUITE("apps.nectar.privacy") {
  TEST_CASE("no password, password hash or session token reaches the SQL store; replay agrees") {
    test::temp_dir dir;
    runtime::node_config cfg;
    cfg.data_dir = dir.path() + "/node/data";
    cfg.provenance_dir = dir.path() + "/node/log";
    cfg.spool_file = dir.path() + "/store.sqlite";
    cfg.durability = storage::durability::async;
    cfg.partitions = 2;
    cfg.listen = true;
    cfg.record_reads = true; // row_reads too: a session's reads must be masked as well
    auto procs = std::make_shared<runtime::procedure_registry>();
    apps::register_all(*procs);
    const std::string password = "correct horse battery";
    const std::string console_hash = "scrypt$16384$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA==";
    std::vector<std::string> tokens; // the cookies' session tokens, in clear
    int answered = 0;
    std::string digest; // the node's state when it stops
    {
      runtime::system_config sc{2};
      caf::actor_system sys{sc};
      auto n = test::must(runtime::node::start(sys, cfg, procs));
      nectar::server_options so;
      so.node = {"127.0.0.1", n->port()};
      so.port = 0;
      so.threads = 4;
      so.kdf.log2_n = 10; // fast hashes for the test
      so.capture_opts.label = false;
      so.capture_opts.rules = false;
      auto srv = test::must(nectar::server::start(sys, so));
      test::browser alice{srv->port()};
      REQUIRE(alice.get("/register"));
      auto r = alice.post("/register", {{"username", "alice"}, {"password", password}});
      REQUIRE(r);
      REQUIRE(r->status == 303);
      tokens.push_back(alice.cookie);
      CHECK(alice.get("/")->status == 200); // the form token of the new session
      r = alice.post("/post", {{"text", "hello from alice"}});
      CHECK(r->status == 303);
      CHECK(alice.get("/u/alice")->status == 200);
      r = alice.post("/logout", {});
      CHECK(r->status == 303);
      alice.get("/login");
      tokens.push_back(alice.cookie); // the anonymous session of the login form
      r = alice.post("/login", {{"username", "alice"}, {"password", password}});
      REQUIRE(r->status == 303);
      tokens.push_back(alice.cookie);
      CHECK(alice.get("/search?q=hello")->status == 200);
      answered = alice.answered;
      test::must(n->call("console.account_set",
                         json{{"username", "root"}, {"password_hash", console_hash}, {"now", 1}},
                         "admin"));
      auto got = test::must(n->call("console.account_get", json{{"username", "root"}}, "admin"));
      CHECK(got["password_hash"] == console_hash);
      srv->stop();
      CHECK(srv->stats().captured == static_cast<uint64_t>(answered));
      digest = test::must(n->db().digest());
    } // the node stops: its spooler makes a last pass
    for (auto& t : tokens)
      REQUIRE(t.size() == 64);

    // The log keeps what replay needs: the password hash and the session keys.
    std::string user_hash;
    std::set<std::string> session_keys;
    auto reader = test::must(storage::log_reader::open(cfg.provenance_dir));
    auto read = reader.for_each(1, [&](storage::log_record&& rec) {
      if (rec.kind != storage::log_record::kind_t::invocation)
        return true;
      auto args = json::parse(rec.payload, nullptr, false);
      if (rec.procedure == "nectar.register")
        user_hash = args.value("hash", "");
      if (args.is_object() && args.contains("session"))
        session_keys.insert(args["session"].get<std::string>());
      return true;
    });
    REQUIRE_MESSAGE(!read, describe(read));
    REQUIRE(user_hash.size() == 64);
    CHECK(session_keys.count(nectar::sha256_hex(tokens.back())) == 1);

    std::vector<std::string> secrets{password, "correct+horse+battery", user_hash, console_hash,
                                     "aGFzaGhhc2hoYXNoaGFzaA=="};
    for (auto& t : tokens)
      secrets.push_back(t);
    for (auto& k : session_keys)
      secrets.push_back(k);

    // Every text cell of every table, searched for each secret.
    auto store = everything(cfg.spool_file);
    size_t cells = 0;
    for (auto& [table, res] : store)
      for (auto& row : res.rows)
        for (size_t c = 0; c < row.size(); ++c) {
          if (!row[c].is_string())
            continue;
          ++cells;
          auto& text = row[c].get_ref<const std::string&>();
          for (auto& s : secrets)
            CHECK_MESSAGE(!has(text, s), table << "." << res.columns[c] << " holds '" << s
                                               << "': " << text.substr(0, 200));
        }
    CHECK(cells > 500);

    // What the store shows instead: masks, equal for equal values, so joins still work.
    auto db = test::must(apps::console::readonly_db::open(cfg.spool_file));
    auto one = [&](const std::string& sql) {
      auto r = test::must(db->run(sql));
      REQUIRE_MESSAGE(!r.rows.empty(), sql);
      return r.rows;
    };
    auto users = one("SELECT hash, salt FROM nectar_users WHERE username = 'alice'");
    CHECK(users[0][0].get<std::string>().rfind("[private:", 0) == 0);
    CHECK(users[0][1].get<std::string>().size() == 32); // the salt is not a secret
    auto accounts = one("SELECT password_hash FROM console_accounts");
    CHECK(accounts[0][0].get<std::string>().rfind("[private:", 0) == 0);
    auto live = one("SELECT row_key FROM nectar_sessions");
    CHECK(live.size() == 1); // logout deleted the first; the login form's token is no session
    for (auto& k : live)
      CHECK(k[0].get<std::string>().rfind("[private:", 0) == 0);
    auto joined = one("SELECT COUNT(*) FROM func_invocations f JOIN nectar_sessions s ON "
                      "json_extract(f.args, '$.session') = s.row_key WHERE f.procedure = "
                      "'nectar.search'");
    CHECK(joined[0][0] == 1);
    auto reads = one("SELECT COUNT(*) FROM row_reads r JOIN nectar_sessions s ON "
                     "r.row_key = s.row_key WHERE r.table_name = 'nectar.sessions'");
    CHECK(reads[0][0].get<int64_t>() >= 1);
    auto requests = one("SELECT COUNT(*), SUM(cs_cookie LIKE '%nectar_session=[masked]%'), "
                        "SUM(masked LIKE '%form:password%') FROM httplog_request");
    CHECK(requests[0][0] == answered);
    CHECK(requests[0][1].get<int64_t>() == answered - 2); // all but the two sent without one
    CHECK(requests[0][2] == 2);                          // register and login

    // Replay from the log (which spool.key sits beside) gives the node's state.
    runtime::replay_options ro;
    ro.log_dir = cfg.provenance_dir;
    ro.into_dir = dir.path() + "/replayed";
    ro.source_data = cfg.data_dir;
    auto rep = test::must(runtime::replay(*procs, ro));
    CHECK(rep.applied > 0);
    CHECK(rep.digest == digest);
    CHECK(std::filesystem::exists(cfg.provenance_dir + "/spool.key"));
  }
}
