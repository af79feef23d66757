// `comb console` (the web console over the SQL store) and `comb console add-user`. Accounts
// live in the node's console.accounts table, so both take --node. This file parses flags and
// prints; the server is apps/console's (console_server.hpp).
#include "cli/commands.hpp"
#include "cli/tls_flags.hpp"

#include "apps/console/accounts.hpp"
#include "apps/console/console_server.hpp"
#include "base/endpoint.hpp"
#include "base/errc.hpp"
#include "runtime/system_config.hpp"

#include <caf/actor_system.hpp>

#include <fstream>
#include <iostream>

namespace comb::cli {

namespace {

namespace con = apps::console;

struct console_opts {
  std::string sql;
  std::string node;
  std::string listen = "127.0.0.1:8090";
  std::string static_dir;
  int64_t sql_timeout_ms = 5000;
  double seconds = 0;
  std::string user;
  std::string password_file;
  runtime::tls_config tls; // --tls-*: to reach a node of a TLS cluster
  std::string secret_file; // --secret-file: a cluster's shared secret
};

// Reads a password from a file or stdin (first line), never from the command line, where
// other users of the machine could read it.
std::string read_password(const console_opts& o) {
  std::string pw;
  if (!o.password_file.empty()) {
    std::ifstream in(o.password_file);
    if (!in)
      fail("console add-user", make_error(errc::not_found, "cannot read " + o.password_file));
    std::getline(in, pw);
  } else {
    std::getline(std::cin, pw);
  }
  if (!pw.empty() && pw.back() == '\r')
    pw.pop_back();
  return pw;
}

// The node of --node, or a clear error: the accounts are in its console.accounts table.
endpoint node_of(const console_opts& o, const char* cmd) {
  if (o.node.empty())
    fail(cmd,
         make_error(errc::invalid_argument,
                    "--node HOST:PORT is required: the console's accounts live in the "
                    "node's console.accounts table (`comb node` or `comb demo` serves it)"),
         2);
  auto ep = parse_endpoint(o.node);
  if (!ep)
    fail(cmd, ep.error(), 2);
  return *ep;
}

} // namespace

void add_console_commands(CLI::App& app) {
  auto o = std::make_shared<console_opts>();
  auto* cmd = app.add_subcommand(
    "console", "Serve the web console (Overview, Search, Stats) over an SQL store");
  cmd->add_option("--sql", o->sql, "SQL store file (e.g. DATA/provenance.sqlite)");
  cmd->add_option("--node", o->node,
                  "HOST:PORT of the Comb node that holds the accounts (console.accounts) and "
                  "the captured requests");
  cmd->add_option("--listen", o->listen, "HOST:PORT to serve on (port 0: any free port)")
    ->capture_default_str();
  cmd->add_option("--static", o->static_dir, "folder of the console's pages and scripts");
  cmd->add_option("--sql-timeout-ms", o->sql_timeout_ms, "time limit of a Search query")
    ->capture_default_str()
    ->check(CLI::PositiveNumber);
  cmd->add_option("--seconds", o->seconds, "stop after this many seconds (0: at Ctrl-C)");
  auto* add = cmd->add_subcommand("add-user", "Add a console user, or set their password "
                                              "(read from stdin or --password-file)");
  add
    ->add_option("--node", o->node,
                 "HOST:PORT of the node whose console.accounts table "
                 "keeps the account")
    ->required();
  add->add_option("--user", o->user, "username")->required();
  add->add_option("--password-file", o->password_file, "file whose first line is the password");
  add_tls_flags(cmd, o->tls);
  add_secret_flag(cmd, o->secret_file);
  add_tls_flags(add, o->tls);
  add_secret_flag(add, o->secret_file);
  add->callback([o] {
    auto node = node_of(*o, "console add-user");
    auto password = read_password(*o);
    runtime::system_config cfg{1};
    if (auto err = cfg.set_tls(o->tls))
      fail("console add-user", err, 2);
    caf::actor_system sys{cfg};
    con::console_link link{sys, node, "console", o->tls,
                           read_secret("console add-user", o->secret_file)};
    con::accounts acc{link};
    if (auto err = acc.set_user(o->user, password))
      fail("console add-user", err);
    std::cout << "console user '" << o->user << "' saved in the console.accounts table of node "
              << node.to_string() << "\n";
  });
  cmd->callback([o, cmd] {
    if (cmd->got_subcommand("add-user"))
      return;
    if (o->sql.empty())
      fail("console", make_error(errc::invalid_argument, "--sql FILE is required (the SQL "
                                                         "store, e.g. DATA/provenance.sqlite)"));
    auto node = node_of(*o, "console");
    auto ep = parse_endpoint(o->listen);
    if (!ep)
      fail("console", ep.error());
    // SIGINT/SIGTERM blocked before the actor system starts its threads, so that
    // run_until_signal takes them.
    con::console_server::block_stop_signals();
    runtime::system_config cfg{2};
    if (auto err = cfg.set_tls(o->tls))
      fail("console", err, 2);
    caf::actor_system sys{cfg};
    con::console_options opts;
    opts.sql_file = o->sql;
    opts.system = &sys;
    opts.node = node;
    opts.node_tls = o->tls;
    opts.node_secret = read_secret("console", o->secret_file);
    opts.host = ep->host;
    opts.port = ep->port;
    opts.static_dir = o->static_dir;
    opts.search_limits.time = std::chrono::milliseconds(o->sql_timeout_ms);
    auto server = con::console_server::make(std::move(opts));
    if (!server)
      fail("console", server.error());
    auto port = (*server)->bind();
    if (!port)
      fail("console", port.error());
    std::cerr << (*server)->warnings();
    if (ep->host != "127.0.0.1" && ep->host != "localhost" && ep->host != "::1")
      std::cerr << "comb console: warning: serving on " << ep->host
                << " without TLS; put it behind a TLS proxy\n";
    std::cout << "console listening on http://" << ep->host << ":" << *port << "/" << std::endl;
    (*server)->run_until_signal(o->seconds);
    std::cout << "console stopped" << std::endl;
  });
}

} // namespace comb::cli
