// comb::apps::console::console_server: the web console (Overview, Search, Stats) served with
// cpp-httplib over the SQL store. Pages and JSON endpoints need a logged-in session (cookie
// HttpOnly, SameSite=Strict); every form and every POST carries the session's CSRF token;
// every response carries a Content-Security-Policy without inline scripts, nosniff and
// frame-ancestors 'none'. Static files (HTML, JS, CSS) come from the repository's
// apps/console/static and plotly.js from its npm folder. SQL runs on a read-only connection
// opened per request. Accounts, and raw request bytes over the store's 64 KiB limit, come from
// the console's node (console_app.hpp). Owned by the caller of `serve`; run() blocks on the calling thread,
// stop() may be called from any thread.
#pragma once

#include "apps/console/console_schema.hpp"
#include "apps/console/readonly_sql.hpp"
#include "base/endpoint.hpp"
#include "runtime/tls.hpp"

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <functional>
#include <memory>
#include <string>

namespace comb::apps::console {

struct console_options {
  std::string sql_file; ///< the SQL store (SQLite), opened read-only
  /// The node whose console.accounts table holds the accounts and whose httplog tables
  /// hold the raw bytes the store keeps as digests; calls go through `system`'s middleman.
  caf::actor_system* system = nullptr;
  endpoint node;
  runtime::tls_config node_tls; ///< TLS files to reach the node (console_link)
  std::string node_secret;      ///< the cluster's shared secret, if it has one
  std::string host = "127.0.0.1";
  int port = 8090;            ///< 0: any free port (bound_port() says which)
  std::string static_dir;     ///< empty: <source>/apps/console/static
  std::string npm_dir;        ///< empty: <source>/apps/console/node_modules
  query_limits search_limits; ///< raw SQL of the Search tab
  console_schema schema;
};

/// The header every response carries, as one place to read (and test) it.
extern const char* const content_security_policy;

class console_server {
public:
  /// Checks the options (store and static folder present, a node given; a node that cannot
  /// be reached yet is a warning: logins wait for it).
  static caf::expected<std::unique_ptr<console_server>> make(console_options opts);
  ~console_server();

  /// Binds the listening socket; returns the port.
  caf::expected<int> bind();

  /// Serves until stop().
  void run();

  /// Makes run() return.
  void stop();

  /// Serves until SIGINT or SIGTERM (or `seconds` when > 0), then stops cleanly. Blocks
  /// those signals in the calling thread first, so call it before starting other threads.
  void run_until_signal(double seconds = 0);

  /// Blocks SIGINT and SIGTERM in the calling thread and the threads it starts later; call
  /// before an actor system starts its threads, so that run_until_signal takes them.
  static void block_stop_signals();

  /// Warnings found at start (e.g. plotly.js not installed), one per line.
  const std::string& warnings() const;

private:
  struct impl;
  explicit console_server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace comb::apps::console
