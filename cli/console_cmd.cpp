// `comb console` (the web console over the SQL store) and `comb console add-user`. This file
// parses flags and prints; the server is apps/console's (console_server.hpp).
#include "cli/commands.hpp"

#include "apps/console/accounts.hpp"
#include "apps/console/console_server.hpp"
#include "base/endpoint.hpp"
#include "base/errc.hpp"

#include <fstream>
#include <iostream>

namespace comb::cli {

namespace {

namespace con = apps::console;

struct console_opts {
  std::string sql;
  std::string listen = "127.0.0.1:8090";
  std::string accounts;
  std::string static_dir;
  int64_t sql_timeout_ms = 5000;
  double seconds = 0;
  std::string user;
  std::string password_file;
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

} // namespace

void add_console_commands(CLI::App& app) {
  auto o = std::make_shared<console_opts>();
  auto* cmd = app.add_subcommand(
    "console", "Serve the web console (Overview, Search, Stats) over an SQL store");
  cmd->add_option("--sql", o->sql, "SQL store file (e.g. DATA/provenance.sqlite)");
  cmd->add_option("--listen", o->listen, "HOST:PORT to serve on (port 0: any free port)")
    ->capture_default_str();
  cmd->add_option("--accounts", o->accounts,
                  "console accounts file (default: <store>.console-users)");
  cmd->add_option("--static", o->static_dir, "folder of the console's pages and scripts");
  cmd->add_option("--sql-timeout-ms", o->sql_timeout_ms, "time limit of a Search query")
    ->capture_default_str();
  cmd->add_option("--seconds", o->seconds, "stop after this many seconds (0: at Ctrl-C)");
  auto* add = cmd->add_subcommand("add-user", "Add a console user, or set their password "
                                              "(read from stdin or --password-file)");
  add->add_option("--sql", o->sql, "SQL store file the accounts go with")->required();
  add->add_option("--accounts", o->accounts,
                  "console accounts file (default: <store>.console-users)");
  add->add_option("--user", o->user, "username")->required();
  add->add_option("--password-file", o->password_file, "file whose first line is the password");
  add->callback([o] {
    auto file = o->accounts.empty() ? con::accounts_file_for(o->sql) : o->accounts;
    auto acc = con::accounts::open(file);
    if (!acc)
      fail("console add-user", acc.error());
    if (auto err = (*acc)->set_user(o->user, read_password(*o)))
      fail("console add-user", err);
    std::cout << "console user '" << o->user << "' saved in " << file << "\n";
  });
  cmd->callback([o, cmd] {
    if (cmd->got_subcommand("add-user"))
      return;
    if (o->sql.empty())
      fail("console", make_error(errc::invalid_argument, "--sql FILE is required (the SQL "
                                                         "store, e.g. DATA/provenance.sqlite)"));
    auto ep = parse_endpoint(o->listen);
    if (!ep)
      fail("console", ep.error());
    con::console_options opts;
    opts.sql_file = o->sql;
    opts.accounts_file = o->accounts;
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
