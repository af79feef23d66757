// The Nectar traffic generator (see traffic.hpp): a scheduler thread releases request slots
// on time (open loop), client threads take them, each slot being a benign step of some
// browser session or an attack, and write one truth record per request.
#include "apps/nectar/traffic.hpp"

#include "base/endpoint.hpp"
#include "base/errc.hpp"
#include "base/json_text.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <netdb.h>

namespace comb::nectar {

namespace {

using clock_type = std::chrono::steady_clock;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

// --- the generator's own benign lists, for kinds the payload folder lacks ------------------
// Names and texts in several languages, so that benign traffic is not all ASCII English.

const std::vector<std::string> builtin_first_names = {
  "Anna",  "Lukas",  "Sofia", "Mateo", "Zoë",    "Jürgen", "Chloé", "Björn",   "Ingrid",
  "José",  "Lucía",  "João",  "Marta", "Mehmet", "Ayşe",   "Olga",  "Дмитрий", "Наталья",
  "Yuki",  "Haruto", "佐藤",  "李伟",  "王芳",   "Minh",   "Priya", "Arjun",   "Fatima",
  "Omar",  "محمد",   "Noa",   "Eitan", "Kwame",  "Amara",  "Liam",  "Emma",    "Giulia",
  "Piotr", "Zofia",  "Søren", "Aoife", "Nikos",  "Eleni",  "Tomás", "Camila"};

const std::vector<std::string> builtin_last_names = {
  "Müller",  "García",       "Rossi",     "Nowak",    "Yılmaz", "Ivanova",   "Tanaka", "Nguyen",
  "Silva",   "Dubois",       "Jensen",    "Kowalski", "Haddad", "Cohen",     "Mensah", "Smith",
  "O'Brien", "Papadopoulos", "Fernández", "Kim",      "Sharma", "Andersson", "Novák",  "Costa"};

const std::vector<std::string> builtin_posts = {
  "Just got back from a long walk by the river, the light was amazing today.",
  "Does anyone have a good recipe for banana bread? Mine always comes out too dry.",
  "Heute war ein guter Tag: endlich das Fahrrad repariert!",
  "¿Alguien sabe si el museo abre los lunes?",
  "Le café du coin a changé de propriétaire, les croissants sont toujours aussi bons.",
  "Finished reading 'The Left Hand of Darkness' — what a book.",
  "今日は雨ですね。家でコーヒーを飲みながら本を読んでいます。",
  "Сегодня наконец-то выпал первый снег.",
  "Our team shipped the release at 2am, time for some sleep :)",
  "Voting for the new park design closes on Friday, 50% of the budget goes to trees.",
  "Bugün hava çok güzel, sahilde yürüyüş yaptık.",
  "New blog post about sourdough starters is up, link in my profile.",
  "Who else is watching the match tonight? #football",
  "A tarefa de casa de matemática está difícil hoje...",
  "I think I finally understand how compound interest works. Took me long enough!",
  "Het regent al de hele week, maar de tulpen bloeien toch.",
  "Looking for a running buddy in the mornings, 5k pace around 6:00/km.",
  "今天的晚饭是饺子，很好吃！",
  "Anyone going to the jazz concert on Saturday? Tickets are €15.",
  "Rainy Sunday = board games & tea. Catan again, of course."};

const std::vector<std::string> builtin_searches = {
  "anna",    "river",    "banana bread", "café",      "football",       "garcía",
  "release", "snow",     "jazz concert", "sourdough", "park",           "running",
  "tanaka",  "müller",   "book club",    "recipe",    "weekend",        "photos",
  "коффе",   "コーヒー", "tea",          "music",     "trip to Lisbon", "#football"};

const std::vector<std::string> builtin_user_agents = {
  "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0",
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
  "Chrome/120.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 13_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
  "Version/16.6 Safari/605.1.15",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
  "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
  "Chrome/119.0.0.0 Mobile Safari/537.36"};

// Paths scanners probe when their list gives a user agent rather than a path.
const std::vector<std::string> scanner_paths = {
  "/.env",          "/wp-login.php",     "/admin/",     "/phpmyadmin/index.php", "/.git/config",
  "/server-status", "/cgi-bin/test-cgi", "/backup.zip", "/config.php.bak",       "/actuator/env"};

// Display names made of the first and last names above.
const std::vector<std::string>& builtin_person_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (auto& f : builtin_first_names)
      for (auto& l : builtin_last_names)
        out.push_back(f + " " + l);
    return out;
  }();
  return names;
}

// The benign kinds the generator takes from the payload folder (benign/<file>.txt, the first
// of the names that exists), with its own list when none does.
struct benign_kind {
  const char* name;
  std::vector<const char*> files;
  const std::vector<std::string>* builtin;
};

const std::vector<benign_kind>& benign_kinds() {
  static const std::vector<benign_kind> kinds = {
    {"person_names", {"person_names", "names"}, &builtin_person_names()},
    {"free_text", {"free_text", "posts"}, &builtin_posts},
    {"search_queries", {"search_queries", "searches"}, &builtin_searches},
    {"user_agents", {"user_agents"}, &builtin_user_agents},
  };
  return kinds;
}

const std::vector<std::string>& benign_list(const payload_lists& p, const std::string& kind) {
  for (auto& k : benign_kinds()) {
    if (kind != k.name)
      continue;
    for (auto* f : k.files)
      if (auto it = p.benign.find(f); it != p.benign.end() && !it->second.empty())
        return it->second;
    return *k.builtin;
  }
  return builtin_posts;
}

caf::expected<std::vector<std::string>> read_list(const std::filesystem::path& file) {
  std::ifstream in{file, std::ios::binary};
  if (!in)
    return make_error(errc::bad_config, file.string() + ": cannot read payload list");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.empty() || line[0] == '#')
      continue;
    out.push_back(std::move(line));
  }
  return out;
}

// --- HTTP pieces ---------------------------------------------------------------------------

bool is_hex(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0;
}

// Encodes a path, keeping '/' and valid escapes: a traversal payload keeps its shape.
std::string path_encode(const std::string& s) {
  std::string out;
  size_t start = 0;
  while (start <= s.size()) {
    auto slash = s.find('/', start);
    auto part = s.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    out += url_encode(part, /*keep_escapes=*/true);
    if (slash == std::string::npos)
      break;
    out += '/';
    start = slash + 1;
  }
  return out;
}

std::string form_body(const std::vector<std::pair<std::string, std::string>>& fields,
                      bool keep_escapes) {
  std::string body;
  for (auto& [k, v] : fields) {
    if (!body.empty())
      body += '&';
    body += url_encode(k) + '=' + url_encode(v, keep_escapes);
  }
  return body;
}

// A request as the generator builds it, before it goes on the wire.
struct request {
  std::string method = "GET";
  std::string path;
  std::string body;
  httplib::Headers headers;
  truth_record truth;
};

// One simulated browser: its account, cookies and the csrf token of the last form it saw.
struct session {
  enum class stage { fresh, have_register_form, registered, have_login_form, logged_in };
  std::string username, password, display_name, user_agent;
  std::map<std::string, std::string> cookies;
  std::string csrf;
  std::string last_page;
  /// Where the last response redirected to: a browser loads it next (and gets a fresh form).
  std::string follow;
  stage st = stage::fresh;
  std::vector<std::string> following;
  uint64_t steps = 0;

  std::string cookie_header() const {
    std::string h;
    for (auto& [k, v] : cookies) {
      if (!h.empty())
        h += "; ";
      h += k + '=' + v;
    }
    return h;
  }
};

// Reads every Set-Cookie of a response into the session's cookie jar (deletions included).
void take_cookies(session& s, const httplib::Response& res) {
  auto range = res.headers.equal_range("Set-Cookie");
  for (auto it = range.first; it != range.second; ++it) {
    auto& v = it->second;
    auto eq = v.find('=');
    if (eq == std::string::npos)
      continue;
    auto name = v.substr(0, eq);
    auto end = v.find(';', eq);
    auto value = v.substr(eq + 1, end == std::string::npos ? std::string::npos : end - eq - 1);
    bool expired = value.empty() || v.find("Max-Age=0") != std::string::npos
                   || v.find("max-age=0") != std::string::npos;
    if (expired)
      s.cookies.erase(name);
    else
      s.cookies[name] = value;
  }
}

bool is_loopback(const std::string& host, std::string& why) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res); rc != 0) {
    why = "cannot resolve '" + host + "': " + gai_strerror(rc);
    return false;
  }
  bool all = res != nullptr;
  for (auto* a = res; a; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      auto ip = ntohl(reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr.s_addr);
      all = all && (ip >> 24) == 127;
    } else if (a->ai_family == AF_INET6) {
      auto& addr = reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr;
      all = all && IN6_IS_ADDR_LOOPBACK(&addr);
    } else {
      all = false;
    }
  }
  freeaddrinfo(res);
  if (!all)
    why = "'" + host + "' is not a loopback address (pass --allow-remote to send attacks there)";
  return all;
}

// --- the generator -------------------------------------------------------------------------

class generator {
public:
  generator(const traffic_options& o, const payload_lists& p, truth_observer observe,
            std::string run_id)
    : o_(o), p_(p), observe_(std::move(observe)), run_id_(std::move(run_id)) {
    for (auto& [family, list] : p_.attacks)
      if (!list.empty() || family.find("overs") != std::string::npos)
        families_.push_back(family);
  }

  caf::expected<traffic_stats> run(const endpoint& ep);

private:
  struct slot {
    uint64_t n;
    clock_type::time_point at;
  };

  void worker(uint32_t index, const endpoint& ep);
  void warm_up(const endpoint& ep);
  std::unique_ptr<httplib::Client> client(const endpoint& ep) const;
  /// Sends `r` for session `s` (null: none), updates the session, records the truth.
  void exchange(httplib::Client& cli, session* s, bool is_attack, request r, std::string trace_id,
                clock_type::time_point scheduled, bool warmup);
  request benign_step(session& s, std::mt19937_64& rng);
  request attack(session* s, std::mt19937_64& rng);
  void on_response(session& s, const request& r, const httplib::Response& res);
  session* take_session(bool want_logged_in);
  void give_back(session* s);
  std::string pick_user(std::mt19937_64& rng, const std::string& not_this);
  void new_identity(session& s, std::mt19937_64& rng);
  std::string post_text(std::mt19937_64& rng);
  void record(const truth_record& t, double latency_ms, const std::string& error, bool warmup);
  /// The counts of a timed request (out_mu_ held).
  void record_counts(const truth_record& t, double latency_ms, const std::string& error);

  template <class T>
  const T& pick(const std::vector<T>& v, std::mt19937_64& rng) {
    return v[std::uniform_int_distribution<size_t>{0, v.size() - 1}(rng)];
  }

  const traffic_options& o_;
  const payload_lists& p_;
  truth_observer observe_;
  std::string run_id_;
  std::vector<std::string> families_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<slot> queue_;
  bool closed_ = false;
  clock_type::time_point drain_deadline_ = clock_type::time_point::max();

  std::mutex sessions_mu_;
  std::vector<std::unique_ptr<session>> sessions_;
  std::vector<session*> idle_;
  std::vector<std::string> users_;

  std::mutex out_mu_;
  std::ofstream truth_;
  traffic_stats stats_;
  std::vector<double> latencies_;
  clock_type::time_point last_sent_{};
};

void generator::new_identity(session& s, std::mt19937_64& rng) {
  s.display_name = pick(benign_list(p_, "person_names"), rng);
  // Usernames allow [A-Za-z0-9_.-]: keep the ASCII letters of the name, as people do when a
  // site will not take theirs.
  std::string base;
  for (char c : s.display_name)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.')
      base += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (c == ' ' || c == '-')
      base += '.';
  while (!base.empty() && base.front() == '.')
    base.erase(base.begin());
  if (base.size() < 3)
    base = "user";
  base = base.substr(0, 20);
  s.username = base + std::to_string(std::uniform_int_distribution<int>{10, 99999}(rng));
  static const char pw_chars[] =
    "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789!@#$%^&*-_";
  s.password.clear();
  int len = std::uniform_int_distribution<int>{10, 20}(rng);
  for (int i = 0; i < len; ++i)
    s.password += pw_chars[std::uniform_int_distribution<size_t>{0, sizeof(pw_chars) - 2}(rng)];
  s.user_agent = pick(benign_list(p_, "user_agents"), rng);
  s.cookies.clear();
  s.csrf.clear();
  s.following.clear();
  s.st = session::stage::fresh;
}

std::string generator::pick_user(std::mt19937_64& rng, const std::string& not_this) {
  std::lock_guard<std::mutex> g{sessions_mu_};
  for (int tries = 0; tries < 4 && !users_.empty(); ++tries) {
    auto& u = pick(users_, rng);
    if (u != not_this)
      return u;
  }
  return not_this;
}

std::string generator::post_text(std::mt19937_64& rng) {
  // A post is 1-2000 bytes: a person writes one that fits (longer lines are drawn again).
  auto& list = benign_list(p_, "free_text");
  for (int tries = 0; tries < 8; ++tries) {
    auto& t = pick(list, rng);
    if (!t.empty() && t.size() <= 2000)
      return t;
  }
  return pick(builtin_posts, rng);
}

request generator::benign_step(session& s, std::mt19937_64& rng) {
  using stage = session::stage;
  request r;
  auto form = [&](const std::string& path, std::vector<std::pair<std::string, std::string>> fields,
                  const std::string& step) {
    r.method = "POST";
    r.path = path;
    fields.emplace_back("csrf", s.csrf);
    r.body = form_body(fields, /*keep_escapes=*/false);
    r.truth.placement = step;
  };
  auto get = [&](const std::string& path, const std::string& step) {
    r.method = "GET";
    r.path = path;
    r.truth.placement = step;
  };
  if (!s.follow.empty()) {
    get(s.follow, "redirect");
    s.follow.clear();
    r.truth.cls = "benign";
    r.headers.emplace("User-Agent", s.user_agent);
    return r;
  }
  switch (s.st) {
  case stage::fresh:
    if (s.steps % 3 == 0 && s.last_page.empty())
      get("/", "home");
    else
      get("/register", "register_form");
    break;
  case stage::have_register_form:
    form("/register",
         {{"username", s.username}, {"password", s.password}, {"display_name", s.display_name}},
         "register");
    break;
  case stage::registered:
    get("/login", "login_form");
    break;
  case stage::have_login_form:
    form("/login", {{"username", s.username}, {"password", s.password}}, "login");
    break;
  case stage::logged_in: {
    // What a person on the site does next, roughly as often as people do it. Logging out is
    // rare (1 step in 200): a social network's users stay logged in, and each new login is a
    // scrypt hash on the server.
    int roll = std::uniform_int_distribution<int>{0, 999}(rng);
    bool have_csrf = !s.csrf.empty();
    if (!have_csrf || roll < 280) {
      get("/feed", "feed");
    } else if (roll < 430) {
      get("/u/" + url_encode(pick_user(rng, s.username)), "profile");
    } else if (roll < 560) {
      form("/post", {{"text", post_text(rng)}}, "post");
    } else if (roll < 660) {
      auto other = pick_user(rng, s.username);
      s.following.push_back(other);
      form("/follow", {{"username", other}}, "follow");
    } else if (roll < 790) {
      get("/search?q=" + url_encode(pick(benign_list(p_, "search_queries"), rng)), "search");
    } else if (roll < 850) {
      get("/static/nectar.css", "static");
    } else if (roll < 910) {
      get("/", "home");
    } else if (roll < 950 && !s.following.empty()) {
      auto other = s.following.back();
      s.following.pop_back();
      form("/unfollow", {{"username", other}}, "unfollow");
    } else if (roll < 995) {
      get("/u/" + url_encode(s.username), "own_profile");
    } else {
      form("/logout", {}, "logout");
    }
    break;
  }
  }
  r.truth.cls = "benign";
  r.headers.emplace("User-Agent", s.user_agent);
  if (!s.last_page.empty())
    r.headers.emplace("Referer", "http://" + o_.target + s.last_page);
  return r;
}

request generator::attack(session* s, std::mt19937_64& rng) {
  request r;
  auto& family = pick(families_, rng);
  r.truth.cls = "attack";
  r.truth.family = family;
  auto has = [&](const char* part) { return family.find(part) != std::string::npos; };
  std::string payload;
  auto& list = p_.attacks.at(family);
  bool oversized = has("overs") || has("large") || has("long");
  if (oversized) {
    // Oversized values are generated: sizes from a few KiB to past the capture's 1 MiB bound.
    static const size_t sizes[] = {4 << 10, 16 << 10, 64 << 10, 256 << 10, (1 << 20) + 4096};
    size_t n = sizes[std::uniform_int_distribution<size_t>{0, 4}(rng)];
    std::string unit = list.empty() ? std::string{"A"} : pick(list, rng);
    if (unit.empty())
      unit = "A";
    while (payload.size() < n)
      payload += unit;
    payload.resize(n);
  } else {
    payload = pick(list, rng);
  }
  std::string ua = s ? s->user_agent : pick(benign_list(p_, "user_agents"), rng);
  // Where this family's payloads go, the way attackers (and their tools) place them.
  std::vector<std::string> places;
  if (has("sql"))
    places = {"query",  "form:username",     "form:password", "path",
              "cookie", "header:User-Agent", "form:text"};
  else if (has("xss"))
    places = {"form:text", "form:display_name", "query", "header:Referer", "path"};
  else if (has("trav") || has("lfi") || has("path"))
    places = {"path", "path", "query"};
  else if (has("cmd") || has("command") || has("shell") || has("rce"))
    places = {"query", "form:text", "form:username", "header:User-Agent", "cookie"};
  else if (has("scan") || has("probe"))
    places = {"scanner"};
  else if (has("crlf"))
    places = {"query", "path", "cookie", "form:display_name"};
  else if (oversized)
    places = {"form:text", "query", "header:User-Agent", "cookie"};
  else if (has("jndi") || has("log4"))
    places = {"header:User-Agent", "header:Referer", "query", "form:username"};
  else if (has("nosql") || has("ldap") || has("xpath"))
    places = {"form:username", "form:password", "query"};
  else if (has("ssti") || has("xxe") || has("code"))
    places = {"form:text", "form:display_name", "query"};
  else if (has("ssrf"))
    places = {"query", "form:text", "header:Referer"};
  else
    places = {"query", "form:text", "header:User-Agent", "path"};
  auto place = pick(places, rng);
  // A header cannot hold CR, LF or other controls: attackers encode them there.
  auto header_safe = [](const std::string& v) {
    std::string out;
    for (unsigned char c : v)
      if (c < 0x20 || c == 0x7f) {
        char buf[4];
        std::snprintf(buf, sizeof(buf), "%%%02X", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
    return out;
  };
  bool logged_in = s && s->st == session::stage::logged_in;
  r.truth.placement = place;
  if (place == "query") {
    r.path = "/search?q=" + url_encode(payload, /*keep_escapes=*/true);
  } else if (place == "path") {
    if (has("trav") || has("lfi") || has("path"))
      r.path = "/static/" + path_encode(payload);
    else
      r.path = "/u/" + url_encode(payload, /*keep_escapes=*/true);
  } else if (place == "scanner") {
    r.truth.placement = "path";
    if (!payload.empty() && payload[0] == '/') {
      r.path = path_encode(payload);
      ua = "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)";
    } else {
      // Canaries, bad characters and format strings go into a parameter of a probed path.
      r.path = pick(scanner_paths, rng) + "?id=" + url_encode(payload, /*keep_escapes=*/true);
      ua = "sqlmap/1.7#stable (https://sqlmap.org)";
      r.truth.placement = "query";
    }
  } else if (place == "header:User-Agent") {
    ua = header_safe(payload);
  } else if (place == "header:Referer") {
    r.path = "/feed";
    r.headers.emplace("Referer", header_safe(payload));
  } else if (place == "cookie") {
    r.path = "/feed";
    r.headers.emplace("Cookie", "nectar_session=" + header_safe(payload));
  } else if (place.rfind("form:", 0) == 0) {
    auto field = place.substr(5);
    std::vector<std::pair<std::string, std::string>> fields;
    if (field == "text" && logged_in) {
      r.path = "/post";
      fields = {{"text", payload}};
    } else if (field == "password"
               || (field == "username" && std::uniform_int_distribution<int>{0, 1}(rng) == 0)) {
      r.path = "/login";
      fields = {{"username", field == "username" ? payload : (s ? s->username : "admin")},
                {"password", field == "password" ? payload : "password123"}};
    } else {
      // A form field in the registration form (or a post's text for a visitor: still sent).
      if (field == "text") {
        r.path = "/post";
        fields = {{"text", payload}};
      } else {
        r.path = "/register";
        fields = {{"username",
                   field == "username" ? payload : "visitor" + std::to_string(rng() % 100000)},
                  {"password", "correct-horse-battery"},
                  {"display_name", field == "display_name" ? payload : "Visitor"}};
      }
    }
    r.method = "POST";
    if (s)
      fields.emplace_back("csrf", s->csrf);
    r.body = form_body(fields, /*keep_escapes=*/true);
  }
  if (r.path.empty())
    r.path = "/feed";
  r.headers.emplace("User-Agent", ua);
  if (s && !r.headers.count("Cookie") && !s->cookies.empty())
    r.headers.emplace("Cookie", s->cookie_header());
  return r;
}

void generator::on_response(session& s, const request& r, const httplib::Response& res) {
  using stage = session::stage;
  take_cookies(s, res);
  auto csrf = find_csrf(res.body);
  if (!csrf.empty())
    s.csrf = csrf;
  auto location = res.get_header_value("Location");
  bool ok = res.status < 400;
  auto& step = r.truth.placement;
  if (step == "register_form" && ok)
    s.st = stage::have_register_form;
  else if (step == "register") {
    if (ok) {
      // Nectar logs a new user in and sends them home; a site that does not sends them to
      // its login form.
      bool in = res.status == 303 && location == "/" && s.cookies.count("nectar_session");
      s.st = in ? stage::logged_in : stage::registered;
      std::lock_guard<std::mutex> g{sessions_mu_};
      users_.push_back(s.username);
    } else {
      s.st = stage::fresh; // name taken or refused: a new identity next time
      s.username += "x";
    }
  } else if (step == "login_form" && ok)
    s.st = stage::have_login_form;
  else if (step == "login")
    s.st = ok && s.cookies.count("nectar_session") ? stage::logged_in : stage::registered;
  else if (step == "logout")
    s.st = stage::registered;
  else if (s.st == stage::logged_in
           && (res.status == 403 || location.find("/login") != std::string::npos))
    s.st = stage::registered; // the session expired or its token went stale
  if (res.status == 403)
    s.csrf.clear();
  if (r.method == "GET" && ok)
    s.last_page = r.path.substr(0, 200);
  if (res.status >= 301 && res.status <= 303 && location.rfind("/", 0) == 0
      && location.rfind("//", 0) != 0)
    s.follow = location.substr(0, 200);
}

session* generator::take_session(bool want_logged_in) {
  std::lock_guard<std::mutex> g{sessions_mu_};
  if (idle_.empty())
    return nullptr;
  auto it = idle_.begin();
  if (want_logged_in)
    it = std::find_if(idle_.begin(), idle_.end(),
                      [](session* s) { return s->st == session::stage::logged_in; });
  if (it == idle_.end())
    it = idle_.begin();
  auto* s = *it;
  idle_.erase(it);
  return s;
}

void generator::give_back(session* s) {
  std::lock_guard<std::mutex> g{sessions_mu_};
  idle_.push_back(s);
}

void generator::record(const truth_record& t, double latency_ms, const std::string& error,
                       bool warmup) {
  {
    std::lock_guard<std::mutex> g{out_mu_};
    if (warmup) {
      // In the truth file (the server captures it), in no count or rate of the timed run.
      stats_.warmup += 1;
      if (truth_.is_open()) {
        auto w = t;
        w.warmup = true;
        truth_ << w.to_json_line() << '\n';
      }
    } else {
      record_counts(t, latency_ms, error);
    }
  }
  if (observe_)
    observe_(t);
}

void generator::record_counts(const truth_record& t, double latency_ms, const std::string& error) {
  stats_.sent += 1;
  last_sent_ = clock_type::now();
  if (t.cls == "attack") {
    stats_.attacks += 1;
    stats_.by_family[t.family] += 1;
  } else {
    stats_.benign += 1;
  }
  if (t.status > 0) {
    stats_.answered += 1;
    stats_.by_status[t.status] += 1;
    latencies_.push_back(latency_ms);
  } else if (stats_.errors.size() < 5 && !error.empty()) {
    stats_.errors.push_back(t.method + " " + t.path.substr(0, 80) + ": " + error);
  }
  if (truth_.is_open())
    truth_ << t.to_json_line() << '\n';
}

std::unique_ptr<httplib::Client> generator::client(const endpoint& ep) const {
  auto cli = std::make_unique<httplib::Client>(ep.host, ep.port);
  cli->set_keep_alive(true);
  cli->set_url_encode(false); // paths are encoded here, payloads exactly as the attacker meant
  cli->set_follow_location(false);
  auto timeout = std::chrono::milliseconds{static_cast<int64_t>(o_.timeout_s * 1e3)};
  cli->set_connection_timeout(timeout);
  cli->set_read_timeout(timeout);
  cli->set_write_timeout(timeout);
  return cli;
}

void generator::exchange(httplib::Client& cli, session* s, bool is_attack, request r,
                         std::string trace_id, clock_type::time_point scheduled, bool warmup) {
  r.truth.trace_id = std::move(trace_id);
  r.truth.method = r.method;
  r.truth.path = r.path.substr(0, 512);
  r.headers.emplace("X-Nectar-Trace", r.truth.trace_id);
  if (!is_attack && s && !s->cookies.empty())
    r.headers.emplace("Cookie", s->cookie_header());
  r.headers.emplace("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8");
  r.truth.bytes = r.method.size() + r.path.size() + r.body.size() + 11;
  for (auto& [k, v] : r.headers)
    r.truth.bytes += k.size() + v.size() + 4;
  r.truth.sent_ns = now_ns();
  httplib::Result res = r.method == "POST"
                          ? cli.Post(r.path, r.headers, r.body, "application/x-www-form-urlencoded")
                          : cli.Get(r.path, r.headers);
  double latency_ms =
    std::chrono::duration<double, std::milli>(clock_type::now() - scheduled).count();
  std::string error;
  if (res) {
    r.truth.status = res->status;
    if (s && !is_attack)
      on_response(*s, r, *res);
    else if (s)
      take_cookies(*s, *res);
  } else {
    error = httplib::to_string(res.error());
  }
  if (s)
    s->steps += 1;
  record(r.truth, latency_ms, error, warmup);
}

void generator::warm_up(const endpoint& ep) {
  // Each thread takes the next session and walks it through registration (a redirect, a
  // taken name or a lost answer cost a step: at most 8 per session).
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> n{0};
  auto walk = [&](uint32_t index) {
    std::mt19937_64 rng{o_.seed * 0xBF58476D1CE4E5B9ull + index + 1};
    auto cli = client(ep);
    for (size_t i = next++; i < sessions_.size(); i = next++) {
      auto* s = sessions_[i].get();
      for (int step = 0; step < 8 && s->st != session::stage::logged_in; ++step)
        exchange(*cli, s, /*is_attack=*/false, benign_step(*s, rng),
                 run_id_ + "-w" + std::to_string(n++), clock_type::now(), /*warmup=*/true);
      // The redirect after registration loads the home page, as a browser does.
      if (!s->follow.empty())
        exchange(*cli, s, /*is_attack=*/false, benign_step(*s, rng),
                 run_id_ + "-w" + std::to_string(n++), clock_type::now(), /*warmup=*/true);
    }
  };
  std::vector<std::thread> pool;
  for (uint32_t i = 0; i < std::max<uint32_t>(1, o_.connections); ++i)
    pool.emplace_back(walk, i);
  for (auto& t : pool)
    t.join();
}

void generator::worker(uint32_t index, const endpoint& ep) {
  std::mt19937_64 rng{o_.seed * 0x9E3779B97F4A7C15ull + index + 1};
  auto cli = client(ep);
  for (;;) {
    slot sl;
    {
      std::unique_lock<std::mutex> lk{queue_mu_};
      queue_cv_.wait(lk, [&] { return !queue_.empty() || closed_; });
      if (queue_.empty())
        return;
      if (clock_type::now() > drain_deadline_) {
        stats_.dropped += queue_.size();
        queue_.clear();
        return;
      }
      sl = queue_.front();
      queue_.pop_front();
    }
    // The class of a slot, and for an attack its family, payload and placement, are a
    // function of the seed and the slot number alone, so that a run's attacks do not depend
    // on thread timing (benign sessions do: their steps follow the server's answers).
    std::mt19937_64 slot_rng{o_.seed ^ (sl.n * 0xD1B54A32D192ED03ull)};
    bool is_attack = !families_.empty()
                     && std::uniform_real_distribution<double>{0, 1}(slot_rng) < o_.attack_share;
    // Attackers act from a session too (most often a logged-in one, to reach the forms).
    session* s = take_session(is_attack);
    request r;
    if (is_attack)
      r = attack(s, slot_rng);
    else if (s)
      r = benign_step(*s, rng);
    else {
      r.path = "/static/nectar.css";
      r.truth.cls = "benign";
      r.truth.placement = "static";
    }
    exchange(*cli, s, is_attack, std::move(r), run_id_ + "-" + std::to_string(sl.n), sl.at,
             /*warmup=*/false);
    if (s)
      give_back(s);
  }
}

caf::expected<traffic_stats> generator::run(const endpoint& ep) {
  if (!o_.truth_file.empty()) {
    truth_.open(o_.truth_file, std::ios::binary | std::ios::trunc);
    if (!truth_)
      return make_error(errc::invalid_argument, o_.truth_file + ": cannot write the truth file");
  }
  uint32_t threads = std::max<uint32_t>(1, o_.connections);
  // More sessions than threads, so that a thread always finds an idle one.
  std::mt19937_64 rng{o_.seed};
  for (uint32_t i = 0; i < threads * 4 + 4; ++i) {
    auto s = std::make_unique<session>();
    new_identity(*s, rng);
    idle_.push_back(s.get());
    sessions_.push_back(std::move(s));
  }
  stats_.run_id = run_id_;
  if (o_.log_in_first)
    warm_up(ep);
  if (o_.on_clock_start)
    o_.on_clock_start();
  auto total = static_cast<uint64_t>(o_.rate * o_.duration_s + 0.5);
  stats_.scheduled = total;
  std::vector<std::thread> pool;
  for (uint32_t i = 0; i < threads; ++i)
    pool.emplace_back([this, i, &ep] { worker(i, ep); });
  auto start = clock_type::now();
  auto period = std::chrono::duration<double>(1.0 / o_.rate);
  for (uint64_t n = 0; n < total; ++n) {
    auto at = start + std::chrono::duration_cast<clock_type::duration>(period * double(n));
    std::this_thread::sleep_until(at);
    {
      std::lock_guard<std::mutex> g{queue_mu_};
      queue_.push_back({n, at});
    }
    queue_cv_.notify_one();
  }
  {
    std::lock_guard<std::mutex> g{queue_mu_};
    closed_ = true;
    drain_deadline_ = clock_type::now()
                      + std::chrono::duration_cast<clock_type::duration>(
                        std::chrono::duration<double>(o_.drain_s));
  }
  queue_cv_.notify_all();
  for (auto& t : pool)
    t.join();
  if (truth_.is_open()) {
    truth_.flush();
    if (!truth_)
      return make_error(errc::storage_error, o_.truth_file + ": writing the truth file failed");
  }
  // Sending n requests on schedule takes n periods: the last one's period counts too.
  stats_.seconds = std::chrono::duration<double>(std::max(last_sent_, start) - start).count()
                   + 1.0 / o_.rate;
  stats_.achieved_rate = stats_.seconds > 0 ? static_cast<double>(stats_.sent) / stats_.seconds
                                            : static_cast<double>(stats_.sent);
  if (!latencies_.empty()) {
    std::sort(latencies_.begin(), latencies_.end());
    auto at = [&](double q) {
      return latencies_[std::min(latencies_.size() - 1,
                                 static_cast<size_t>(q * static_cast<double>(latencies_.size())))];
    };
    stats_.latency_p50_ms = at(0.5);
    stats_.latency_p99_ms = at(0.99);
  }
  return stats_;
}

} // namespace

std::string url_encode(const std::string& s, bool keep_escapes) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else if (keep_escapes && c == '%' && i + 2 < s.size() && is_hex(s[i + 1])
               && is_hex(s[i + 2])) {
      out += '%';
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string find_csrf(const std::string& html) {
  // Finds name="csrf" (or 'csrf') inside an <input> tag and reads that tag's value attribute.
  for (size_t at = html.find("csrf"); at != std::string::npos; at = html.find("csrf", at + 4)) {
    auto open = html.rfind('<', at);
    auto close = html.find('>', at);
    if (open == std::string::npos || close == std::string::npos)
      continue;
    auto tag = html.substr(open, close - open);
    bool named = tag.find("name=\"csrf\"") != std::string::npos
                 || tag.find("name='csrf'") != std::string::npos
                 || tag.find("name=csrf") != std::string::npos;
    if (tag.rfind("<input", 0) != 0 || !named)
      continue;
    auto v = tag.find("value=");
    if (v == std::string::npos)
      continue;
    v += 6;
    if (v < tag.size() && (tag[v] == '"' || tag[v] == '\'')) {
      auto q = tag[v];
      auto end = tag.find(q, v + 1);
      if (end != std::string::npos)
        return tag.substr(v + 1, end - v - 1);
    } else {
      auto end = tag.find_first_of(" \t/", v);
      return tag.substr(v, end == std::string::npos ? std::string::npos : end - v);
    }
  }
  return {};
}

std::string truth_record::to_json_line() const {
  nlohmann::json j{{"trace_id", trace_id},   {"class", cls},       {"family", family},
                   {"placement", placement}, {"method", method},   {"path", path},
                   {"status", status},       {"sent_ns", sent_ns}, {"bytes", bytes}};
  if (warmup)
    j["warmup"] = true;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

caf::expected<truth_record> truth_record::parse(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("trace_id") || !j["trace_id"].is_string()
      || !j.contains("class") || !j["class"].is_string())
    return make_error(errc::invalid_argument,
                      "not a truth record (a JSON object with trace_id and class)");
  truth_record t;
  t.trace_id = j["trace_id"].get<std::string>();
  t.cls = j["class"].get<std::string>();
  if (t.cls != "benign" && t.cls != "attack")
    return make_error(errc::invalid_argument, "class '" + t.cls + "' is neither benign nor attack");
  auto str = [&](const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string{};
  };
  t.family = str("family");
  t.placement = str("placement");
  t.method = str("method");
  t.path = str("path");
  if (j.contains("status") && j["status"].is_number_integer())
    t.status = j["status"].get<int>();
  if (j.contains("sent_ns") && j["sent_ns"].is_number_integer())
    t.sent_ns = j["sent_ns"].get<int64_t>();
  if (j.contains("bytes") && j["bytes"].is_number_unsigned())
    t.bytes = j["bytes"].get<uint64_t>();
  t.warmup = j.contains("warmup") && j["warmup"].is_boolean() && j["warmup"].get<bool>();
  return t;
}

std::string default_payload_dir() {
#ifdef COMB_SOURCE_DIR
  return std::string{COMB_SOURCE_DIR} + "/apps/anomaly/payloads";
#else
  return "apps/anomaly/payloads";
#endif
}

caf::expected<payload_lists> payload_lists::load(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(fs::path{dir} / "attacks", ec))
    return make_error(errc::bad_config, dir
                                          + "/attacks: no attack payload folder (expected "
                                            "attacks/<family>.txt, one payload a line)");
  payload_lists p;
  for (auto& [sub, into] : {std::pair{"attacks", &p.attacks}, std::pair{"benign", &p.benign}}) {
    auto folder = fs::path{dir} / sub;
    if (!fs::is_directory(folder, ec))
      continue;
    for (auto& e : fs::directory_iterator{folder, ec}) {
      if (!e.is_regular_file() || e.path().extension() != ".txt")
        continue;
      auto list = read_list(e.path());
      if (!list)
        return std::move(list.error());
      (*into)[e.path().stem().string()] = std::move(*list);
    }
  }
  bool any = false;
  for (auto& [family, list] : p.attacks)
    any = any || !list.empty();
  if (!any)
    return make_error(errc::bad_config, dir + "/attacks: no attack payloads in any <family>.txt");
  return p;
}

caf::expected<traffic_stats> run_traffic(const traffic_options& opts, const payload_lists& payloads,
                                         truth_observer observe) {
  auto ep = parse_endpoint(opts.target);
  if (!ep)
    return std::move(ep.error());
  if (!(opts.rate > 0 && opts.rate <= 1e6))
    return make_error(errc::invalid_argument, "--rate must be in (0, 1e6] requests/s");
  if (!(opts.duration_s > 0 && opts.duration_s <= 86400))
    return make_error(errc::invalid_argument, "--duration must be in (0, 86400] seconds");
  if (!(opts.attack_share >= 0 && opts.attack_share <= 1))
    return make_error(errc::invalid_argument, "--attack-share must be in [0, 1]");
  std::string why;
  if (!opts.allow_remote && !is_loopback(ep->host, why))
    return make_error(errc::invalid_argument, why);
  // A run id that differs between runs, so that one store can hold several runs' traces.
  std::random_device rd;
  char id[16];
  std::snprintf(id, sizeof(id), "t%08x", static_cast<unsigned>(rd() ^ (now_ns() >> 10)));
  generator g{opts, payloads, std::move(observe), id};
  return g.run(*ep);
}

std::string to_string(const traffic_stats& s) {
  std::ostringstream out;
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "run %s: %llu of %llu requests sent in %.2f s (%.1f requests/s achieved), "
                "%llu answered, %llu dropped\n",
                s.run_id.c_str(), static_cast<unsigned long long>(s.sent),
                static_cast<unsigned long long>(s.scheduled), s.seconds, s.achieved_rate,
                static_cast<unsigned long long>(s.answered),
                static_cast<unsigned long long>(s.dropped));
  out << buf;
  std::snprintf(buf, sizeof(buf), "benign %llu, attacks %llu; latency p50 %.1f ms p99 %.1f ms\n",
                static_cast<unsigned long long>(s.benign),
                static_cast<unsigned long long>(s.attacks), s.latency_p50_ms, s.latency_p99_ms);
  out << buf;
  if (s.warmup > 0)
    out << "warm-up before the clock: " << s.warmup
        << " requests (every session registered and logged in; in the truth file)\n";
  if (!s.by_family.empty()) {
    out << "attack families:";
    for (auto& [f, n] : s.by_family)
      out << ' ' << f << '=' << n;
    out << '\n';
  }
  if (!s.by_status.empty()) {
    out << "statuses:";
    for (auto& [code, n] : s.by_status)
      out << ' ' << code << '=' << n;
    out << '\n';
  }
  for (auto& e : s.errors)
    out << "error: " << e << '\n';
  return out.str();
}

} // namespace comb::nectar
