// Helpers for the Nectar tests: a `comb node` child on a fixed loopback port (kill it and
// start it again on the same data), a browser-like HTTP client that keeps the session cookie
// and reads form tokens from pages, and a raw socket for malformed requests. Header only; not
// thread-safe (one per thread).
#pragma once

#include "tests/test_util.hpp"

#include <httplib.h>
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace comb::test {

/// `comb node` on 127.0.0.1:port() with its data in `dir`, restartable on the same data.
class node_child {
public:
  node_child(const temp_dir& dir, std::vector<std::string> extra = {})
    : dir_(dir), port_(free_port()), extra_(std::move(extra)) {
    start();
  }
  void start() {
    using namespace std::chrono_literals;
    auto log = dir_.path() + "/node-" + std::to_string(++starts_) + ".log";
    std::vector<std::string> argv{comb_binary(),  "node",
                                  "--data",       dir_.path() + "/node",
                                  "--listen",     "127.0.0.1:" + std::to_string(port_),
                                  "--durability", "async"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    proc_ = std::make_unique<child_process>(argv, log);
    REQUIRE_MESSAGE(wait_for_line(log, "listening on", 60s, proc_.get()),
                    "comb node did not start: " << read_file(log));
  }
  void kill() { proc_->kill(SIGKILL); }
  uint16_t port() const { return static_cast<uint16_t>(port_); }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }

private:
  const temp_dir& dir_;
  int port_;
  std::vector<std::string> extra_;
  int starts_ = 0;
  std::unique_ptr<child_process> proc_;
};

/// `s` as application/x-www-form-urlencoded text.
inline std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (auto& [k, v] : fields) {
    if (!out.empty())
      out += '&';
    out += httplib::detail::encode_query_param(k) + "=" + httplib::detail::encode_query_param(v);
  }
  return out;
}

/// A browser: keeps the nectar_session cookie, reads the csrf token of the last page.
class browser {
public:
  explicit browser(uint16_t port) : cli_("127.0.0.1", port) {
    cli_.set_read_timeout(30, 0);
    cli_.set_keep_alive(false);
  }

  /// Responses received so far (each is one request the server answered).
  int answered = 0;

  httplib::Result get(const std::string& path, httplib::Headers extra = {}) {
    auto r = cli_.Get(path.c_str(), with_cookie(std::move(extra)));
    note(r);
    return r;
  }

  /// POSTs `fields` (plus the csrf of the last page unless `with_csrf` is false).
  httplib::Result post(const std::string& path,
                       std::vector<std::pair<std::string, std::string>> fields,
                       bool with_csrf = true, httplib::Headers extra = {}) {
    if (with_csrf)
      fields.emplace_back("csrf", csrf);
    auto r = cli_.Post(path.c_str(), with_cookie(std::move(extra)), form_encode(fields),
                       "application/x-www-form-urlencoded");
    note(r);
    return r;
  }

  std::string cookie;
  std::string csrf;

private:
  httplib::Headers with_cookie(httplib::Headers h) {
    if (!cookie.empty())
      h.emplace("Cookie", "nectar_session=" + cookie);
    return h;
  }
  void note(const httplib::Result& r) {
    if (!r)
      return;
    ++answered;
    auto sc = r->get_header_value("Set-Cookie");
    std::smatch m;
    if (std::regex_search(sc, m, std::regex{"nectar_session=([0-9a-f]*)"}))
      cookie = m[1];
    if (std::regex_search(r->body, m, std::regex{"name=\"csrf\" value=\"([0-9a-f]+)\""}))
      csrf = m[1];
  }
  httplib::Client cli_;
};

/// Sends each of `parts` in turn on one fresh connection, reading one answer after each, and
/// returns the status of each answer (0: none). The connection stays open for writing
/// (httplib writes no answer to a half-closed one); an answer ends at its Content-Length.
inline std::vector<int> raw_requests(uint16_t port, const std::vector<std::string>& parts) {
  std::vector<int> statuses;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return std::vector<int>(parts.size(), 0);
  }
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string got;
  for (auto& bytes : parts) {
    size_t off = 0;
    while (off < bytes.size()) {
      auto n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0)
        break; // the server may answer and close before reading everything
      off += static_cast<size_t>(n);
    }
    char buf[4096];
    int status = 0;
    for (;;) {
      auto head = got.find("\r\n\r\n");
      if (head != std::string::npos) {
        std::smatch m;
        std::string headers = got.substr(0, head);
        size_t len = 0;
        if (std::regex_search(headers, m,
                              std::regex{"Content-Length: ([0-9]+)", std::regex::icase}))
          len = std::stoul(m[1]);
        if (got.size() >= head + 4 + len) {
          if (got.rfind("HTTP/1.1 ", 0) == 0 && got.size() >= 12)
            status = std::stoi(got.substr(9, 3));
          got.erase(0, head + 4 + len);
          break;
        }
      }
      auto n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0)
        break;
      got.append(buf, static_cast<size_t>(n));
    }
    statuses.push_back(status);
  }
  close(fd);
  return statuses;
}

/// Sends `bytes` on a fresh connection and returns the status of the answer (0: none).
inline int raw_request(uint16_t port, const std::string& bytes) {
  return raw_requests(port, {bytes}).front();
}

} // namespace comb::test
