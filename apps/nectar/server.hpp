// comb::nectar::server: Nectar's HTTP server (cpp-httplib from Debian) in the process that
// starts it. Its handlers call Nectar's stored procedures on a Comb node through node_link;
// each routed request goes to the capture worker (capture_worker.hpp) when its handler starts
// (capture_options::at_arrival: its rule label and model call do not wait for the handler),
// and its response when written; the worker writes the row to httplog_request with its rule
// label and enqueues its model label. A request no route takes is captured after its
// response. Pages
// are plain HTML without script, every user-written text escaped, a CSP that forbids inline
// script, a CSRF token bound to the session cookie on every form, limits on body and header
// size and read timeouts against slow clients. Used by `comb nectar serve`, `comb demo`, the
// tests and the benchmark. start() and stop() from one thread; stats() from any.
#pragma once

#include "apps/nectar/capture_worker.hpp"
#include "apps/nectar/credentials.hpp"
#include "base/endpoint.hpp"
#include "runtime/tls.hpp"

#include <caf/actor_system.hpp>
#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace comb::nectar {

struct server_options {
  /// The node's gateway.
  endpoint node;
  /// Where to listen; port 0 picks a free one (server::port() says which).
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  /// Capture every request into httplog_request (false: no capture and no labels).
  bool capture = true;
  /// How requests are captured and labeled (rules, model, batching, memory bound).
  capture_options capture_opts;
  /// The role the server calls the node's procedures as.
  std::string role = "nectar";
  /// The cluster's credentials for the node connection: TLS files (the actor system must have
  /// them too, system_config::set_tls) or, without TLS, the shared secret.
  runtime::tls_config tls;
  std::string secret;
  /// Worker threads of the HTTP server (each request holds one until its response is sent).
  size_t threads = 64;
  /// A client that sends nothing for this long gets 400 (header incomplete) or is dropped.
  std::chrono::seconds read_timeout{5};
  /// A client must send a whole request (headers and body) within this long of connecting or
  /// of its previous response, or its connection is closed (slowloris: one byte just inside
  /// read_timeout each time); 0: no bound (slow_client_guard.hpp).
  std::chrono::milliseconds request_read_limit{15000};
  /// Largest request body read; larger ones get 413.
  size_t max_body_bytes = size_t{2} << 20;
  /// scrypt cost of new passwords.
  kdf_params kdf;
  /// Threads that run scrypt (at most this many hashes at once; 0: half the cores) and the
  /// most hashes that may wait for one before a login gets 503 (kdf_pool.hpp).
  size_t kdf_threads = 0;
  size_t kdf_max_waiting = 64;
  /// Lifetime of a login session.
  int64_t session_ttl_s = 7 * 24 * 3600;
};

class server {
public:
  /// Starts listening (connecting to the node on the first request). Errors:
  /// errc::network_error when the address cannot be bound (naming it), unavailable when no
  /// randomness is available for the CSRF key.
  static caf::expected<std::unique_ptr<server>> start(caf::actor_system& sys, server_options opts);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// The port it listens on.
  uint16_t port() const;
  /// "http://HOST:PORT/".
  std::string url() const;
  /// The capture worker's counters (all zero with capture off).
  capture_stats stats() const;
  /// Stops accepting, finishes the requests in progress, and gives the capture worker up to
  /// `capture_deadline` to write what it holds.
  void stop(std::chrono::milliseconds capture_deadline = std::chrono::seconds{5});

  struct impl;

private:
  explicit server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace comb::nectar
