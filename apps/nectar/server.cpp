// Nectar's HTTP server on cpp-httplib (see server.hpp).
#include "apps/nectar/server.hpp"

#include "apps/nectar/form.hpp"
#include "apps/nectar/kdf_pool.hpp"
#include "apps/nectar/node_link.hpp"
#include "apps/nectar/pages.hpp"
#include "apps/nectar/slow_client_guard.hpp"
#include "base/errc.hpp"
#include "base/wall_clock.hpp"

#include <httplib.h>

#include <charconv>
#include <iostream>
#include <thread>

namespace comb::nectar {

using nlohmann::json;

namespace {

constexpr const char* cookie_name = "nectar_session";

/// What the handlers of the request on this thread learned, for the capture (httplib runs a
/// request's routing, handler and logger on one thread).
struct request_state {
  int64_t start_ns = 0;
  uint64_t execution_id = 0;
  /// The capture's id of the request when it was captured at arrival ("" otherwise).
  std::string request_id;
  /// Counted in the capture worker's handlers in progress (handler_started()).
  bool counted = false;
};
thread_local request_state current;

bool is_hex64(std::string_view s) {
  if (s.size() != 64)
    return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  return true;
}

/// The session token of the request's cookie, or "" (absent or not a token of ours).
std::string cookie_token(const httplib::Request& req) {
  auto cookies = req.get_header_value("Cookie");
  std::string_view s{cookies};
  size_t pos = 0;
  while (pos < s.size()) {
    auto end = s.find(';', pos);
    if (end == std::string_view::npos)
      end = s.size();
    auto part = s.substr(pos, end - pos);
    while (!part.empty() && part.front() == ' ')
      part.remove_prefix(1);
    auto eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == cookie_name) {
      auto v = part.substr(eq + 1);
      return is_hex64(v) ? std::string{v} : std::string{};
    }
    pos = end + 1;
  }
  return {};
}

void set_cookie(httplib::Response& res, const std::string& token) {
  res.set_header("Set-Cookie",
                 std::string{cookie_name} + "=" + token + "; Path=/; HttpOnly; SameSite=Lax");
}

void clear_cookie(httplib::Response& res) {
  res.set_header("Set-Cookie",
                 std::string{cookie_name} + "=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
}

void send_html(httplib::Response& res, int status, const std::string& html) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(html, "text/html; charset=utf-8");
}

void redirect(httplib::Response& res, const std::string& to) {
  res.status = 303;
  res.set_header("Location", to);
  res.set_header("Cache-Control", "no-store");
}

/// The HTTP status of a node error.
int status_of(const caf::error& e) {
  if (is(e, errc::invalid_argument) || is(e, errc::too_large))
    return 400;
  if (is(e, errc::permission_denied))
    return 403;
  if (is(e, errc::not_found))
    return 404;
  if (is(e, errc::already_exists))
    return 409;
  if (is_transient(e))
    return 503;
  return 500;
}

/// A message for the page: the node's text for the caller's mistakes, nothing internal.
std::string message_of(const caf::error& e) {
  auto s = status_of(e);
  if (is(e, errc::overloaded))
    return "the server is busy; try again in a moment";
  if (s == 503)
    return "the database is unavailable right now; try again in a moment";
  if (s == 500)
    return "internal error";
  auto text = describe(e);
  // "errc: proc: message" -> "message"
  for (int i = 0; i < 2; ++i)
    if (auto p = text.find(": "); p != std::string::npos && p < 40)
      text = text.substr(p + 2);
  return text;
}

/// The first bad percent escape in `s` (its offset), or npos.
size_t bad_escape(std::string_view s) {
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '%' && (i + 2 >= s.size() || !hex(s[i + 1]) || !hex(s[i + 2])))
      return i;
  return std::string_view::npos;
}

const char* reason_of(int status) {
  switch (status) {
  case 400:
    return "the request is malformed";
  case 403:
    return "forbidden";
  case 404:
    return "no such page";
  case 405:
    return "method not allowed";
  case 413:
    return "the request body is too large";
  case 414:
    return "the request target is too long";
  case 415:
    return "unsupported content type";
  case 503:
    return "unavailable";
  default:
    return "error";
  }
}

} // namespace

struct server::impl {
  server_options opts;
  std::shared_ptr<node_link> link;
  std::unique_ptr<capture_worker> worker;
  std::unique_ptr<kdf_pool> kdf;
  std::unique_ptr<slow_client_guard> guard;
  std::string csrf_key;
  httplib::Server http;
  std::thread listener;
  int port = 0;
  bool stopped = false;

  /// Calls `proc`; notes its execution id for the capture.
  caf::expected<json> call(const std::string& proc, json args) {
    auto r = link->call(proc, args);
    if (r && r->is_object())
      if (auto e = r->find("execution"); e != r->end() && e->is_number_unsigned())
        current.execution_id = e->get<uint64_t>();
    return r;
  }

  std::string csrf_of(const std::string& token) const {
    return token.empty() ? std::string{} : hmac_hex(csrf_key, token);
  }

  /// The request's token, or a fresh one set as the cookie (forms need one to bind to).
  std::string ensure_token(const httplib::Request& req, httplib::Response& res) {
    auto t = cookie_token(req);
    if (!t.empty())
      return t;
    auto fresh = random_hex(32);
    if (!fresh)
      return {};
    set_cookie(res, *fresh);
    return *fresh;
  }

  json session_args(const std::string& token) const {
    json a{{"now", wall_clock_ns()}};
    if (!token.empty())
      a["session"] = sha256_hex(token);
    return a;
  }

  /// Who is logged in with `token` (null: nobody); errors from the node.
  caf::expected<json> whoami(const std::string& token) {
    if (token.empty())
      return json(nullptr);
    auto r = call("nectar.whoami", session_args(token));
    if (!r)
      return r.error();
    return r->value("me", json(nullptr));
  }

  page_context ctx(const std::string& token, json me = nullptr) const {
    return page_context{std::move(me), csrf_of(token)};
  }

  void fail(httplib::Response& res, const page_context& c, const caf::error& e) {
    if (is(e, errc::overloaded))
      res.set_header("Retry-After", "1");
    send_html(res, status_of(e), error_page(c, status_of(e), message_of(e)));
  }

  /// Parses a POST form and checks its csrf field; on failure answers and returns nullopt.
  std::optional<form_fields> post_form(const httplib::Request& req, httplib::Response& res,
                                       std::string& token) {
    token = cookie_token(req);
    page_context c = ctx(token);
    auto type = req.get_header_value("Content-Type");
    if (type.rfind("application/x-www-form-urlencoded", 0) != 0) {
      send_html(res, 415,
                error_page(c, 415, "forms must be sent as application/x-www-form-urlencoded"));
      return std::nullopt;
    }
    auto f = parse_form(req.body);
    if (!f) {
      send_html(res, 400, error_page(c, 400, "bad form: " + message_of(f.error())));
      return std::nullopt;
    }
    auto sent = field(*f, "csrf");
    if (token.empty() || sent.empty() || !equal_constant_time(sent, csrf_of(token))) {
      send_html(res, 403,
                error_page(c, 403,
                           "missing or invalid form token (csrf): reload the page that "
                           "shows the form and send it again"));
      return std::nullopt;
    }
    return std::move(*f);
  }

  void routes();
  /// The request as the capture sees it (the response fields unset).
  exchange request_of(const httplib::Request& req) const;
  /// Captures the request at its arrival, before its handler runs (capture_options::at_arrival).
  void begin(const httplib::Request& req);
  /// `h`, starting with begin(): every routed request is captured when it arrives, its body
  /// read (httplib reads it after the pre-routing handler, before the route's handler).
  httplib::Server::Handler captured(httplib::Server::Handler h) {
    return [this, h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
      begin(req);
      h(req, res);
    };
  }
  void capture(const httplib::Request& req, const httplib::Response& res);
};

void server::impl::routes() {
  // Every route's handler starts by capturing its request (begin()).
  auto get = [this](const std::string& pattern, httplib::Server::Handler h) {
    http.Get(pattern, captured(std::move(h)));
  };
  auto post = [this](const std::string& pattern, httplib::Server::Handler h) {
    http.Post(pattern, captured(std::move(h)));
  };
  get("/", [this](const httplib::Request& req, httplib::Response& res) {
    auto token = cookie_token(req);
    if (!token.empty()) {
      auto feed = call("nectar.feed", session_args(token));
      if (feed) {
        auto c = ctx(token, feed->value("me", json(nullptr)));
        return send_html(res, 200, feed_page(c, *feed));
      }
      if (!is(feed.error(), errc::permission_denied))
        return fail(res, ctx(token), feed.error());
    }
    send_html(res, 200, welcome_page(ctx(token)));
  });

  auto form_page = [this](bool is_register) {
    return [this, is_register](const httplib::Request& req, httplib::Response& res) {
      auto token = ensure_token(req, res);
      auto me = whoami(token);
      if (!me)
        return fail(res, ctx(token), me.error());
      auto c = ctx(token, *me);
      send_html(res, 200, is_register ? register_page(c) : login_page(c));
    };
  };
  get("/register", form_page(true));
  get("/login", form_page(false));

  // Logs `username` in with a fresh session token (a new cookie: no session fixation).
  auto log_in = [this](httplib::Response& res, const std::string& username,
                       const std::string& hash) -> caf::error {
    auto token = random_hex(32);
    if (!token)
      return token.error();
    json a{{"username", username},
           {"hash", hash},
           {"session", sha256_hex(*token)},
           {"now", wall_clock_ns()},
           {"ttl_s", opts.session_ttl_s}};
    auto r = call("nectar.login", a);
    if (!r)
      return r.error();
    set_cookie(res, *token);
    redirect(res, "/");
    return {};
  };

  post("/register", [this, log_in](const httplib::Request& req, httplib::Response& res) {
    std::string token;
    auto f = post_form(req, res, token);
    if (!f)
      return;
    auto username = field(*f, "username");
    auto password = field(*f, "password");
    auto display = field(*f, "display_name");
    auto c = ctx(token);
    caf::error bad = check_username(username);
    if (!bad)
      bad = check_password(password);
    if (!bad)
      bad = check_display_name(display);
    if (bad)
      return send_html(res, 400, register_page(c, message_of(bad), username));
    auto salt = random_hex(16);
    if (!salt)
      return fail(res, c, salt.error());
    auto hash = kdf->hash(password, *salt, opts.kdf);
    if (!hash)
      return fail(res, c, hash.error());
    auto r = call("nectar.register", json{{"username", username},
                                          {"display_name", display},
                                          {"salt", *salt},
                                          {"hash", *hash},
                                          {"log2_n", opts.kdf.log2_n},
                                          {"r", opts.kdf.r},
                                          {"p", opts.kdf.p},
                                          {"now", wall_clock_ns()}});
    if (!r) {
      if (status_of(r.error()) < 500)
        return send_html(res, status_of(r.error()),
                         register_page(c, message_of(r.error()), username));
      return fail(res, c, r.error());
    }
    if (auto err = log_in(res, username, *hash))
      fail(res, c, err);
  });

  post("/login", [this, log_in](const httplib::Request& req, httplib::Response& res) {
    std::string token;
    auto f = post_form(req, res, token);
    if (!f)
      return;
    auto username = field(*f, "username");
    auto password = field(*f, "password");
    auto c = ctx(token);
    caf::error bad = check_username(username);
    if (!bad)
      bad = check_password(password);
    if (bad)
      return send_html(res, 400, login_page(c, message_of(bad), username));
    auto info = call("nectar.auth_info", json{{"username", username}});
    if (!info && !is(info.error(), errc::not_found))
      return fail(res, c, info.error());
    kdf_params p = opts.kdf;
    std::string salt = "00000000000000000000000000000000";
    if (info) {
      salt = info->value("salt", salt);
      p.log2_n = info->value("log2_n", p.log2_n);
      p.r = info->value("r", p.r);
      p.p = info->value("p", p.p);
    }
    // Hash even for an unknown user, so the answer takes as long as for a wrong password.
    auto hash = kdf->hash(password, salt, p);
    if (!hash)
      return fail(res, c, hash.error());
    if (!info)
      return send_html(res, 403, login_page(c, "wrong username or password", username));
    if (auto err = log_in(res, username, *hash)) {
      if (is(err, errc::permission_denied))
        return send_html(res, 403, login_page(c, "wrong username or password", username));
      fail(res, c, err);
    }
  });

  post("/logout", [this](const httplib::Request& req, httplib::Response& res) {
    std::string token;
    if (!post_form(req, res, token))
      return;
    auto r = call("nectar.logout", json{{"session", sha256_hex(token)}});
    if (!r)
      return fail(res, ctx(token), r.error());
    clear_cookie(res);
    redirect(res, "/");
  });

  get("/feed", [this](const httplib::Request& req, httplib::Response& res) {
    auto token = cookie_token(req);
    auto feed = call("nectar.feed", session_args(token));
    if (!feed) {
      if (token.empty() || is(feed.error(), errc::permission_denied))
        return redirect(res, "/login");
      return fail(res, ctx(token), feed.error());
    }
    send_html(res, 200, feed_page(ctx(token, feed->value("me", json(nullptr))), *feed));
  });

  post("/post", [this](const httplib::Request& req, httplib::Response& res) {
    std::string token;
    auto f = post_form(req, res, token);
    if (!f)
      return;
    auto text = field(*f, "text");
    if (auto bad = check_post_text(text))
      return send_html(res, 400, error_page(ctx(token), 400, message_of(bad)));
    auto a = session_args(token);
    a["text"] = text;
    auto r = call("nectar.post", a);
    if (!r) {
      if (is(r.error(), errc::permission_denied))
        return redirect(res, "/login");
      return fail(res, ctx(token), r.error());
    }
    redirect(res, "/feed");
  });

  auto follow = [this](bool on) {
    return [this, on](const httplib::Request& req, httplib::Response& res) {
      std::string token;
      auto f = post_form(req, res, token);
      if (!f)
        return;
      auto username = field(*f, "username");
      if (auto bad = check_username(username))
        return send_html(res, 400, error_page(ctx(token), 400, message_of(bad)));
      auto a = session_args(token);
      a["username"] = username;
      auto r = call(on ? "nectar.follow" : "nectar.unfollow", a);
      if (!r) {
        if (is(r.error(), errc::permission_denied))
          return redirect(res, "/login");
        return fail(res, ctx(token), r.error());
      }
      redirect(res, "/u/" + username);
    };
  };
  post("/follow", follow(true));
  post("/unfollow", follow(false));

  get(R"(/u/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    auto token = cookie_token(req);
    std::string username = req.matches[1];
    if (auto bad = check_username(username))
      return send_html(res, 400, error_page(ctx(token), 400, message_of(bad)));
    auto a = session_args(token);
    a["username"] = username;
    auto r = call("nectar.profile", a);
    if (!r)
      return fail(res, ctx(token), r.error());
    send_html(res, 200, profile_page(ctx(token, r->value("me", json(nullptr))), *r));
  });

  get("/search", [this](const httplib::Request& req, httplib::Response& res) {
    auto token = cookie_token(req);
    auto q = req.target.find('?');
    auto f = parse_form(q == std::string::npos ? std::string_view{}
                                               : std::string_view{req.target}.substr(q + 1));
    if (!f)
      return send_html(res, 400,
                       error_page(ctx(token), 400, "bad query: " + message_of(f.error())));
    auto text = field(*f, "q");
    if (auto bad = check_search_text(text))
      return send_html(res, 400, error_page(ctx(token), 400, message_of(bad)));
    auto a = session_args(token);
    a["q"] = text;
    auto r = call("nectar.search", a);
    if (!r)
      return fail(res, ctx(token), r.error());
    send_html(res, 200, search_page(ctx(token, r->value("me", json(nullptr))), *r));
  });

  get("/static/nectar.css", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "max-age=3600");
    res.set_content(std::string{stylesheet()}, "text/css; charset=utf-8");
  });

  get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok", "text/plain; charset=utf-8");
  });
}

exchange server::impl::request_of(const httplib::Request& req) const {
  exchange x;
  x.method = req.method;
  x.target = req.target;
  x.version = req.version;
  // httplib adds the peer's and its own address as header fields; the client sent neither.
  for (auto& [k, v] : req.headers)
    if (k != "REMOTE_ADDR" && k != "REMOTE_PORT" && k != "LOCAL_ADDR" && k != "LOCAL_PORT")
      x.headers.emplace_back(k, v);
  // Only the bytes a row can keep (plus one, so the cut is seen); cs_bytes counts them all.
  if (req.body.size() > max_raw_bytes) {
    x.body = req.body.substr(0, max_raw_bytes + 1);
    x.body_bytes = req.body.size();
  } else {
    x.body = req.body;
  }
  x.remote_addr = req.remote_addr;
  x.ts_ns = current.start_ns != 0 ? current.start_ns : wall_clock_ns();
  return x;
}

void server::impl::begin(const httplib::Request& req) {
  if (!worker || !opts.capture_opts.at_arrival || !current.request_id.empty())
    return;
  current.request_id = worker->begin(request_of(req));
}

void server::impl::capture(const httplib::Request& req, const httplib::Response& res) {
  auto now = wall_clock_ns();
  size_t sc = 17 + res.body.size();
  for (auto& [k, v] : res.headers)
    sc += k.size() + v.size() + 4;
  double taken_ms =
    current.start_ns != 0 ? static_cast<double>(now - current.start_ns) / 1e6 : 0;
  if (!current.request_id.empty()) { // captured at arrival: its response
    worker->complete(current.request_id, res.status, sc, taken_ms, current.execution_id);
    return;
  }
  // A blank line where a request line should be is not a request (RFC 9112 2.2: a server
  // should ignore empty lines before a request line). httplib answers it with a 400, but it is
  // most often the tail of a request already answered (the final CRLF of a header block that
  // httplib refused before reading to its end, arriving in a later read), so it gets no row of
  // its own: the request it belongs to has one.
  if (res.status == 400 && req.method.empty() && req.target.empty() && req.version.empty()
      && req.headers.empty() && req.body.empty())
    return;
  exchange x = request_of(req);
  if (res.status == 413 && x.body.empty()) {
    // Refused for its Content-Length before its body was read: the row keeps no body, and
    // says so (truncated) and how large it was (cs_bytes).
    auto len = req.get_header_value("Content-Length");
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
    if (ec == std::errc{} && end == len.data() + len.size())
      x.body_bytes = static_cast<size_t>(n);
  }
  x.status = res.status;
  x.response_bytes = sc;
  x.ts_ns = current.start_ns != 0 ? current.start_ns : now;
  x.time_taken_ms = taken_ms;
  x.execution_id = current.execution_id;
  worker->push(std::move(x));
}

server::server(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}

server::~server() {
  stop();
}

caf::expected<std::unique_ptr<server>> server::start(caf::actor_system& sys, server_options opts) {
  auto p = std::make_unique<impl>();
  p->opts = opts;
  auto key = random_hex(32);
  if (!key)
    return key.error();
  p->csrf_key = *key;
  p->kdf = std::make_unique<kdf_pool>(opts.kdf_threads, opts.kdf_max_waiting);
  p->link = std::make_shared<node_link>(sys, opts.node, opts.role, opts.tls, opts.secret);
  auto* raw = p.get();
  auto threads = std::max<size_t>(opts.threads, 2);
  p->http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  p->http.set_read_timeout(static_cast<time_t>(opts.read_timeout.count()), 0);
  p->http.set_write_timeout(5, 0);
  p->http.set_keep_alive_timeout(5);
  p->http.set_keep_alive_max_count(100);
  p->http.set_payload_max_length(opts.max_body_bytes);
  p->http.set_default_headers(
    {{"Content-Security-Policy",
      "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
      "frame-ancestors 'none'; base-uri 'none'"},
     {"X-Content-Type-Options", "nosniff"},
     {"X-Frame-Options", "DENY"},
     {"Referrer-Policy", "same-origin"}});
  p->http.set_pre_routing_handler([raw](const httplib::Request& req, httplib::Response& res) {
    current = request_state{wall_clock_ns(), 0, {}, raw->worker != nullptr};
    if (raw->worker)
      raw->worker->handler_started();
    if (raw->guard)
      raw->guard->read(req.remote_addr, req.remote_port);
    // Percent escapes are checked before any route sees the target.
    if (auto at = bad_escape(req.target); at != std::string_view::npos) {
      send_html(
        res, 400,
        error_page(raw->ctx(cookie_token(req)), 400,
                   "invalid percent escape at byte " + std::to_string(at)
                     + " of the request target (a '%' must be followed by two hex digits)"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  p->http.set_error_handler(httplib::Server::HandlerWithResponse{
    [raw](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty())
        return httplib::Server::HandlerResponse::Unhandled; // a page of ours already
      send_html(res, res.status,
                error_page(raw->ctx(cookie_token(req)), res.status, reason_of(res.status)));
      return httplib::Server::HandlerResponse::Handled;
    }});
  p->http.set_exception_handler(
    [raw](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      std::cerr << "nectar: " << req.method << " " << req.path << ": " << what << std::endl;
      send_html(res, 500, error_page(raw->ctx(cookie_token(req)), 500, "internal error"));
    });
  if (opts.capture)
    p->worker = std::make_unique<capture_worker>(p->link, opts.capture_opts);
  p->http.set_logger([raw](const httplib::Request& req, const httplib::Response& res) {
    if (raw->worker)
      raw->capture(req, res);
    if (current.counted)
      raw->worker->handler_ended();
    current = request_state{};
    if (raw->guard)
      raw->guard->answered(req.remote_addr, req.remote_port);
  });
  p->routes();
  if (opts.port == 0) {
    p->port = p->http.bind_to_any_port(opts.host);
    if (p->port <= 0)
      return make_error(errc::network_error, "nectar: cannot listen on " + opts.host + ":0");
  } else {
    if (!p->http.bind_to_port(opts.host, opts.port))
      return make_error(errc::network_error, "nectar: cannot listen on " + opts.host + ":"
                                               + std::to_string(opts.port)
                                               + " (is the port already in use?)");
    p->port = opts.port;
  }
  if (opts.request_read_limit.count() > 0)
    p->guard = std::make_unique<slow_client_guard>(static_cast<uint16_t>(p->port),
                                                   opts.request_read_limit);
  p->listener = std::thread{[raw] { raw->http.listen_after_bind(); }};
  return std::unique_ptr<server>(new server(std::move(p)));
}

uint16_t server::port() const {
  return static_cast<uint16_t>(impl_->port);
}

std::string server::url() const {
  return "http://" + impl_->opts.host + ":" + std::to_string(impl_->port) + "/";
}

capture_stats server::stats() const {
  return impl_->worker ? impl_->worker->stats() : capture_stats{};
}

void server::stop(std::chrono::milliseconds capture_deadline) {
  if (!impl_ || impl_->stopped)
    return;
  impl_->stopped = true;
  impl_->http.stop();
  if (impl_->listener.joinable())
    impl_->listener.join();
  if (impl_->worker)
    impl_->worker->stop(capture_deadline);
}

} // namespace comb::nectar
