// The console's HTTP server: pages, sessions, CSRF, security headers, JSON endpoints.
#include "apps/console/console_server.hpp"

#include "apps/console/accounts.hpp"
#include "apps/console/console_link.hpp"
#include "apps/console/console_queries.hpp"
#include "apps/console/sessions.hpp"
#include "base/base64.hpp"
#include "base/errc.hpp"
#include "base/html.hpp"
#include "base/stop_signals.hpp"
#include "base/wall_clock.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <sqlite3.h>

#include <csignal>
#include <filesystem>
#include <thread>
#include <fstream>
#include <sstream>

#ifndef COMB_SOURCE_DIR
#  define COMB_SOURCE_DIR "."
#endif

namespace comb::apps::console {

// Scripts only from the console itself, never inline; plotly sets style attributes and
// adds style rules at run time, so styles allow 'unsafe-inline' (styles cannot run code).
const char* const content_security_policy =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
  "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; form-action 'self'; "
  "base-uri 'none'; frame-ancestors 'none'";

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* cookie_name = "comb_console";
constexpr const char* plotly_path = "plotly.js-basic-dist-min/plotly-basic.min.js";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string render(std::string tpl, const std::vector<std::pair<std::string, std::string>>& vars) {
  for (auto& [k, v] : vars) {
    auto key = "{{" + k + "}}";
    for (auto pos = tpl.find(key); pos != std::string::npos; pos = tpl.find(key, pos + 1)) {
      auto val = html_escape(v);
      tpl.replace(pos, key.size(), val);
      pos += val.size() - 1;
    }
  }
  return tpl;
}

std::string content_type(const std::string& name) {
  auto ext = fs::path(name).extension().string();
  if (ext == ".js")
    return "text/javascript; charset=utf-8";
  if (ext == ".css")
    return "text/css; charset=utf-8";
  if (ext == ".html")
    return "text/html; charset=utf-8";
  if (ext == ".svg")
    return "image/svg+xml";
  if (ext == ".png")
    return "image/png";
  return "application/octet-stream";
}

bool safe_name(const std::string& n) {
  if (n.empty() || n.size() > 100 || n[0] == '.')
    return false;
  for (unsigned char c : n)
    if (!(std::isalnum(c) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

int status_of(const caf::error& e) {
  if (is(e, errc::permission_denied))
    return 403;
  if (is(e, errc::timeout))
    return 408;
  if (is(e, errc::not_found))
    return 404;
  if (is(e, errc::invalid_argument))
    return 400;
  return 500;
}

std::string code_of(const caf::error& e) {
  if (e.category() == errc_category)
    return to_string(static_cast<errc>(e.code()));
  return "error";
}

std::string error_text(const caf::error& e) {
  // describe() reads "code: context"; the browser shows the context, the code goes apart.
  auto d = describe(e);
  auto code = code_of(e) + ": ";
  return d.rfind(code, 0) == 0 ? d.substr(code.size()) : d;
}

// What provenance writes instead of a long value of a row over 64 KiB
// (runtime/provenance/large_values.hpp): {"$comb_elided": {"sha256", "size", ...}}, which the
// SQL store keeps as that JSON text.
constexpr const char* elided_key = "$comb_elided";

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr) != 1)
    return {};
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

} // namespace

struct console_server::impl {
  console_options opts;
  std::unique_ptr<console_link> node;
  std::unique_ptr<accounts> users;
  session_store sessions;
  login_throttle throttle;
  httplib::Server http;
  std::string warnings;
  fs::path static_dir;
  fs::path plotly_file;

  std::optional<session> current(const httplib::Request& req) {
    auto id = cookie_value(req.get_header_value("Cookie"), cookie_name);
    if (id.empty())
      return std::nullopt;
    return sessions.find(id, wall_clock_ns());
  }

  static void set_cookie(httplib::Response& res, const std::string& id) {
    res.set_header("Set-Cookie",
                   std::string(cookie_name) + "=" + id + "; Path=/; HttpOnly; SameSite=Strict");
  }

  static void json_reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(dump(body), "application/json; charset=utf-8");
  }

  static void error_reply(httplib::Response& res, const caf::error& e, const json& extra = {}) {
    json body = {{"error", error_text(e)}, {"code", code_of(e)}};
    if (extra.is_object())
      body.update(extra);
    json_reply(res, status_of(e), body);
  }

  // A POST from another origin is refused even before its token is checked.
  static bool same_origin(const httplib::Request& req) {
    auto origin = req.get_header_value("Origin");
    if (origin.empty())
      return true;
    return origin == "http://" + req.get_header_value("Host")
           || origin == "https://" + req.get_header_value("Host");
  }

  static httplib::Params form(const httplib::Request& req) {
    httplib::Params p;
    if (req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0)
      httplib::detail::parse_query_text(req.body, p);
    return p;
  }

  static std::string field(const httplib::Params& p, const std::string& k) {
    auto it = p.find(k);
    return it == p.end() ? std::string() : it->second;
  }

  void page(httplib::Response& res, int status, const std::string& tpl_name,
            const std::vector<std::pair<std::string, std::string>>& vars) {
    auto tpl = read_file(static_dir / tpl_name);
    res.status = status;
    res.set_content(render(tpl, vars), "text/html; charset=utf-8");
  }

  void login_page(httplib::Response& res, int status, const session& s, const std::string& err) {
    page(res, status, "login.html", {{"csrf", s.csrf}, {"error", err}});
  }

  // The session of an API call, or nullopt after answering 401/403.
  std::optional<session> api_session(const httplib::Request& req, httplib::Response& res) {
    auto s = current(req);
    if (!s || s->user.empty()) {
      json_reply(res, 401,
                 {{"error", "not logged in (or the session expired): log in again"},
                  {"code", "not_logged_in"}});
      return std::nullopt;
    }
    if (req.method == "POST"
        && (!same_origin(req) || !same_token(req.get_header_value("X-CSRF-Token"), s->csrf))) {
      json_reply(res, 403,
                 {{"error", "missing or invalid CSRF token: reload the page"}, {"code", "csrf"}});
      return std::nullopt;
    }
    return s;
  }

  std::optional<json> api_body(const httplib::Request& req, httplib::Response& res) {
    auto j = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      json_reply(res, 400,
                 {{"error", "the request body must be a JSON object"},
                  {"code", "invalid_argument"}});
      return std::nullopt;
    }
    return j;
  }

  caf::expected<std::unique_ptr<readonly_db>> store() { return readonly_db::open(opts.sql_file); }

  // A JSON endpoint: session and CSRF checked, body parsed, a read-only connection opened;
  // `fn` answers or fails (errors become {error, code} with an HTTP status from the code,
  // plus the body's `echo` member when given).
  template <class F>
  void api_post(const char* path, F fn, const char* echo = nullptr) {
    http.Post(path, [this, fn, echo](const httplib::Request& req, httplib::Response& res) {
      if (!api_session(req, res))
        return;
      auto body = api_body(req, res);
      if (!body)
        return;
      json extra = json::object();
      if (echo && body->contains(echo))
        extra[echo] = (*body)[echo];
      auto db = store();
      if (!db)
        return error_reply(res, db.error(), extra);
      auto r = fn(*body, **db);
      if (!r)
        return error_reply(res, r.error(), extra);
      json_reply(res, 200, *r);
    });
  }

  // A field the SQL store keeps only as its digest (the row was over 64 KiB): the raw bytes
  // are fetched from the Comb table through the node, checked against the digest and shown in
  // its place; either way a note in "elided" says what happened and where the bytes are.
  void restore_elided(json& rec, const std::string& id) {
    if (!rec.value("found", false))
      return;
    json notes = json::array();
    for (auto& f : rec["fields"]) {
      if (!f[1].is_string()
          || f[1].get_ref<const std::string&>().find(elided_key) == std::string::npos)
        continue;
      auto m = json::parse(f[1].get<std::string>(), nullptr, /*allow_exceptions=*/false);
      if (m.is_discarded() || !m.is_object() || !m.contains(elided_key)
          || !m[elided_key].is_object())
        continue;
      auto name = f[0].get<std::string>();
      auto sha = m[elided_key].value("sha256", std::string{});
      auto size = m[elided_key].value("size", uint64_t{0});
      auto where = "the Comb table " + opts.schema.requests_table + ", key " + id;
      auto text = name + ": " + std::to_string(size) + " bytes, kept in the SQL store only as "
                  + "their digest (sha256 " + sha + ", the row is over 64 KiB); ";
      json note{{"field", name}, {"sha256", sha},
                {"size", size},  {"table", opts.schema.requests_table},
                {"key", id},     {"fetched", false}};
      caf::expected<json> got = make_error(errc::not_found, "only raw is fetched");
      if (name == "raw")
        got = node->call("console.request_raw",
                         {{"table", opts.schema.requests_table}, {"id", id}});
      if (got) {
        auto raw = (*got).value("raw", std::string{});
        auto bytes = raw;
        // Provenance digests base64 text as the bytes it encodes (large_values.hpp).
        if (m[elided_key].value("base64", false))
          if (auto d = base64_decode(raw))
            bytes = *d;
        bool same = sha256_hex(bytes) == sha;
        f[1] = raw;
        note["fetched"] = true;
        note["digest_ok"] = same;
        text += "shown from " + where + ", fetched through the node " + node->node_text()
                + (same ? " (digest matches)"
                        : " (the digest differs: the row changed since it was logged)");
      } else {
        note["error"] = error_text(got.error());
        text += "the bytes are in " + where + "; fetching them through the node "
                + node->node_text() + " failed: " + error_text(got.error());
      }
      note["text"] = text;
      notes.push_back(std::move(note));
    }
    rec["elided"] = std::move(notes);
  }

  void routes() {
    http.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
      res.set_header("Content-Security-Policy", content_security_policy);
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("X-Frame-Options", "DENY");
      // same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with
      // the console's own form posts, which the Origin check would refuse.
      res.set_header("Referrer-Policy", "same-origin");
      res.set_header("Cross-Origin-Opener-Policy", "same-origin");
      res.set_header("Cross-Origin-Resource-Policy", "same-origin");
      if (!res.has_header("Cache-Control"))
        res.set_header("Cache-Control", "no-store");
    });
    http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        json_reply(res, 500, {{"error", what}, {"code", "internal"}});
      });
    http.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    http.Get(R"(/static/vendor/plotly\.min\.js)",
             [this](const httplib::Request&, httplib::Response& res) {
               if (!fs::exists(plotly_file)) {
                 res.status = 404;
                 res.set_content("plotly.js is not installed: run scripts/setup.sh (npm ci in "
                                 "apps/console)",
                                 "text/plain");
                 return;
               }
               res.set_header("Cache-Control", "max-age=3600");
               res.set_content(read_file(plotly_file), "text/javascript; charset=utf-8");
             });
    http.Get(R"(/static/([A-Za-z0-9_.-]+))", [this](const httplib::Request& req,
                                                    httplib::Response& res) {
      auto name = req.matches[1].str();
      auto p = static_dir / name;
      if (!safe_name(name) || fs::path(name).extension() == ".html" || !fs::is_regular_file(p)) {
        res.status = 404;
        res.set_content("not found", "text/plain");
        return;
      }
      res.set_header("Cache-Control", "no-cache");
      res.set_content(read_file(p), content_type(name));
    });
    http.Get("/", [this](const httplib::Request& req, httplib::Response& res) {
      auto s = current(req);
      if (!s || s->user.empty()) {
        res.set_redirect("/login", 303);
        return;
      }
      page(res, 200, "console.html", {{"csrf", s->csrf}, {"user", s->user}});
    });
    http.Get("/login", [this](const httplib::Request& req, httplib::Response& res) {
      auto s = current(req);
      if (s && !s->user.empty()) {
        res.set_redirect("/", 303);
        return;
      }
      if (!s) {
        s = sessions.create("", wall_clock_ns());
        set_cookie(res, s->id);
      }
      login_page(res, 200, *s, "");
    });
    http.Post("/login", [this](const httplib::Request& req, httplib::Response& res) {
      auto s = current(req);
      auto f = form(req);
      if (!s || !same_origin(req) || !same_token(field(f, "csrf"), s->csrf)) {
        auto fresh = sessions.create("", wall_clock_ns());
        set_cookie(res, fresh.id);
        login_page(res, 403, fresh,
                   "The form had no valid CSRF token (it expired, or came from elsewhere): "
                   "try again.");
        return;
      }
      auto user = field(f, "username");
      auto now = wall_clock_ns();
      if (auto wait = throttle.wait_s(user, req.remote_addr, now); wait > 0) {
        res.set_header("Retry-After", std::to_string(wait));
        login_page(res, 429, *s,
                   "Too many failed logins for this account or from this address: try again in "
                     + std::to_string((wait + 59) / 60) + " minute(s).");
        return;
      }
      auto good = user.size() > 64 ? caf::expected<bool>{false}
                                   : users->check(user, field(f, "password"));
      if (!good) {
        // The node could not say: no one gets in, and it is not counted as a guess.
        login_page(res, 503, *s,
                   "Cannot check passwords now (" + error_text(good.error())
                     + "): try again soon.");
        return;
      }
      if (!*good) {
        throttle.failed(user, req.remote_addr, now);
        login_page(res, 401, *s, "Wrong username or password.");
        return;
      }
      throttle.succeeded(user);
      // A new id at login, so an id known before login is worth nothing after it.
      sessions.drop(s->id);
      auto fresh = sessions.create(user, wall_clock_ns());
      set_cookie(res, fresh.id);
      res.set_redirect("/", 303);
    });
    http.Post("/logout", [this](const httplib::Request& req, httplib::Response& res) {
      auto s = current(req);
      auto f = form(req);
      if (!s || !same_origin(req) || !same_token(field(f, "csrf"), s->csrf)) {
        res.status = 403;
        res.set_content("missing or invalid CSRF token", "text/plain");
        return;
      }
      sessions.drop(s->id);
      res.set_header("Set-Cookie",
                     std::string(cookie_name) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
      res.set_redirect("/login", 303);
    });
    http.Get("/api/fields", [this](const httplib::Request& req, httplib::Response& res) {
      if (!api_session(req, res))
        return;
      auto db = store();
      if (!db)
        return error_reply(res, db.error());
      auto cols = read_store_columns(**db, opts.schema);
      json out = json::array();
      for (auto& f : opts.schema.fields())
        out.push_back({{"name", f.name},
                       {"numeric", f.numeric},
                       {"present", opts.schema.expr(f, cols) != "NULL"}});
      json_reply(res, 200, {{"fields", out}, {"ready", cols.has_requests}});
    });
    api_post("/api/overview", [this](const json& body, readonly_db& db) -> caf::expected<json> {
      auto q = parse_overview_request(body);
      if (!q)
        return q.error();
      return run_overview(db, opts.schema, *q);
    });
    api_post("/api/record", [this](const json& body, readonly_db& db) -> caf::expected<json> {
      if (!body["id"].is_string())
        return make_error(errc::invalid_argument, "'id' must be a request id (text)");
      auto id = body["id"].get<std::string>();
      auto r = run_record(db, opts.schema, id);
      if (r)
        restore_elided(*r, id);
      return r;
    });
    api_post("/api/stats", [this](const json& body, readonly_db& db) -> caf::expected<json> {
      auto q = parse_overview_request(body);
      if (!q)
        return q.error();
      if (body.contains("bucket") && !body["bucket"].is_string())
        return make_error(errc::invalid_argument, "'bucket' must be day, hour or minute");
      return run_stats(db, opts.schema, *q, body.value("bucket", std::string("hour")));
    });
    // Errors of a raw query also echo it, for the two-row error table.
    api_post(
      "/api/sql",
      [this](const json& body, readonly_db& db) -> caf::expected<json> {
        if (!body["sql"].is_string())
          return make_error(errc::invalid_argument, "'sql' must be the query text");
        auto sql = body["sql"].get<std::string>();
        auto r = db.run(sql, json::array(), opts.search_limits);
        if (!r)
          return r.error();
        return json{{"sql", sql},
                    {"columns", r->columns},
                    {"rows", r->rows},
                    {"truncated", r->truncated},
                    {"max_rows", opts.search_limits.max_rows},
                    {"elapsed_ms", r->elapsed_ms}};
      },
      "sql");
  }
};

console_server::console_server(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}
console_server::~console_server() = default;

caf::expected<std::unique_ptr<console_server>> console_server::make(console_options opts) {
  auto p = std::make_unique<impl>();
  if (opts.sql_file.empty())
    return make_error(errc::invalid_argument, "no SQL store given (--sql FILE)");
  if (opts.sql_file.rfind("postgres", 0) == 0)
    return make_error(errc::invalid_argument,
                      "the console reads SQLite stores only, not yet PostgreSQL ("
                        + opts.sql_file.substr(0, opts.sql_file.find(':'))
                        + "://...): spool the log into a SQLite file too, `comb log spool --log "
                          "DATA/provenance --sql FILE`, and give --sql FILE");
  if (!fs::is_regular_file(opts.sql_file))
    return make_error(errc::not_found, "the SQL store " + opts.sql_file
                                         + " does not exist (a node spools it into "
                                           "DATA/provenance.sqlite)");
  // SQLite opens any file: one that is not a database is refused here, not on every page.
  if (auto db = readonly_db::open(opts.sql_file); !db)
    return db.error();
  else if (sqlite3_exec((*db)->handle(), "SELECT 1 FROM sqlite_master LIMIT 1", nullptr, nullptr,
                        nullptr)
           == SQLITE_NOTADB)
    return make_error(errc::storage_error, "the SQL store " + opts.sql_file
                                             + " is not an SQLite database (give the file a "
                                               "node spools into, DATA/provenance.sqlite)");
  if (!opts.system || opts.node.port == 0)
    return make_error(errc::invalid_argument,
                      "no node given (--node HOST:PORT): the console's accounts live in the "
                      "node's console.accounts table");
  p->node = std::make_unique<console_link>(*opts.system, opts.node, "console", opts.node_tls,
                                           opts.node_secret);
  p->users = std::make_unique<accounts>(*p->node);
  if (auto names = p->users->users(); !names)
    p->warnings += "the node cannot list console users now (" + describe(names.error())
                   + "): logins fail until it answers\n";
  else if (names->empty())
    p->warnings += "no console users yet: add one with `comb console add-user --node "
                   + opts.node.to_string() + " --user NAME`\n";
  p->static_dir = opts.static_dir.empty() ? fs::path(COMB_SOURCE_DIR) / "apps/console/static"
                                          : fs::path(opts.static_dir);
  if (!fs::is_regular_file(p->static_dir / "console.html")
      || !fs::is_regular_file(p->static_dir / "login.html"))
    return make_error(errc::not_found, "the console's pages are not in " + p->static_dir.string()
                                         + " (--static DIR)");
  auto npm = opts.npm_dir.empty() ? fs::path(COMB_SOURCE_DIR) / "apps/console/node_modules"
                                  : fs::path(opts.npm_dir);
  p->plotly_file = npm / plotly_path;
  if (!fs::is_regular_file(p->plotly_file))
    p->warnings += "plotly.js is not installed (" + p->plotly_file.string()
                   + "): Stats will not plot; run scripts/setup.sh\n";
  p->opts = std::move(opts);
  p->http.set_payload_max_length(size_t{1} << 20);
  p->http.set_read_timeout(std::chrono::seconds(10));
  // A browser keeps up to six idle keep-alive connections per host, each holding one of the
  // server's threads: with httplib's default of 8 threads a page's scripts could wait behind
  // idle sockets until they timed out. More threads, and idle sockets let go after 2 s.
  p->http.new_task_queue = [] { return new httplib::ThreadPool(32); };
  p->http.set_keep_alive_timeout(2);
  p->routes();
  return std::unique_ptr<console_server>(new console_server(std::move(p)));
}

caf::expected<int> console_server::bind() {
  auto& o = impl_->opts;
  int port = o.port;
  if (port == 0)
    port = impl_->http.bind_to_any_port(o.host);
  else if (!impl_->http.bind_to_port(o.host, port))
    port = -1;
  if (port < 0)
    return make_error(errc::network_error, "cannot listen on " + o.host + ":"
                                             + std::to_string(o.port)
                                             + " (is the port already in use?)");
  return port;
}

void console_server::run() {
  impl_->http.listen_after_bind();
}

void console_server::stop() {
  impl_->http.stop();
}

void console_server::block_stop_signals() {
  auto set = stop_signal_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void console_server::run_until_signal(double seconds) {
  block_stop_signals();
  auto set = stop_signal_set();
  std::thread server([this] { run(); });
  if (seconds > 0) {
    timespec ts{static_cast<time_t>(seconds),
                static_cast<long>((seconds - static_cast<double>(static_cast<time_t>(seconds)))
                                  * 1e9)};
    sigtimedwait(&set, nullptr, &ts);
  } else {
    int sig = 0;
    sigwait(&set, &sig);
  }
  stop();
  server.join();
}

const std::string& console_server::warnings() const {
  return impl_->warnings;
}

} // namespace comb::apps::console
