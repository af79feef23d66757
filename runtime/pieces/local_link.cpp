// comb::runtime local link: see local_link.hpp.
#include "runtime/pieces/local_link.hpp"

#include "base/errc.hpp"
#include "runtime/pieces/stage_trace.hpp"

#include <caf/actor_cast.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <vector>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

namespace comb::runtime {

namespace {

enum frame_type : uint8_t {
  hello = 1,    // client -> server: key = the token
  hello_ok = 2, // server -> client
  shm_task = 3, // client -> server: (header, shm_ref)
  blob_task = 4,
  result = 5, // server -> client: task_result
  failure = 6, // server -> client: caf::error
  piece_task = 7, // client -> server: an encoded piece, as it is
};

// u32 length of what follows, u8 type, u64 key, u32 generation, u32 piece index.
constexpr size_t frame_head = 21;
constexpr uint32_t head_rest = frame_head - 4;

struct frame {
  uint8_t type = 0;
  uint64_t key = 0;
  uint32_t gen = 0;
  uint32_t idx = 0;
  uint64_t body = 0; // bytes after the head
};

void put_head(char* out, uint8_t type, uint64_t key, uint32_t gen, uint32_t idx, uint64_t body) {
  uint32_t len = static_cast<uint32_t>(head_rest + body);
  std::memcpy(out, &len, 4);
  out[4] = static_cast<char>(type);
  std::memcpy(out + 5, &key, 8);
  std::memcpy(out + 13, &gen, 4);
  std::memcpy(out + 17, &idx, 4);
}

/// Writes all of head and body (MSG_NOSIGNAL: a closed peer is an error, not SIGPIPE).
bool write_frame(int fd, const char* head, const char* body, size_t body_len) {
  iovec iov[2] = {{const_cast<char*>(head), frame_head},
                  {const_cast<char*>(body), body_len}};
  size_t n_iov = body_len > 0 ? 2 : 1;
  size_t at = 0;
  msghdr m{};
  while (n_iov > 0) {
    m.msg_iov = iov + at;
    m.msg_iovlen = n_iov;
    auto w = ::sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    auto left = static_cast<size_t>(w);
    while (n_iov > 0 && left >= iov[at].iov_len) {
      left -= iov[at].iov_len;
      ++at;
      --n_iov;
    }
    if (n_iov > 0) {
      iov[at].iov_base = static_cast<char*>(iov[at].iov_base) + left;
      iov[at].iov_len -= left;
    }
  }
  return true;
}

/// Reads between 1 and n bytes (what the socket holds, waiting for the first); 0 at the end
/// of the stream or on an error (errno says which; 0 at the end).
size_t read_some(int fd, char* out, size_t n) {
  for (;;) {
    auto r = ::recv(fd, out, n, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0)
      errno = 0;
    return r > 0 ? static_cast<size_t>(r) : 0;
  }
}

/// Reads exactly n bytes; false at the end of the stream or on an error (as read_some).
bool read_exact(int fd, char* out, size_t n) {
  while (n > 0) {
    auto r = read_some(fd, out, n);
    if (r == 0)
      return false;
    out += r;
    n -= r;
  }
  return true;
}

enum class head_status { ok, closed, too_short };

/// Decodes a frame's head; too_short when its length cannot even hold the rest of the head.
head_status parse_head(const char* h, frame& f) {
  uint32_t len = 0;
  std::memcpy(&len, h, 4);
  f.type = static_cast<uint8_t>(h[4]);
  std::memcpy(&f.key, h + 5, 8);
  std::memcpy(&f.gen, h + 13, 4);
  std::memcpy(&f.idx, h + 17, 4);
  if (len < head_rest) {
    f.body = len;
    return head_status::too_short;
  }
  f.body = len - head_rest;
  return head_status::ok;
}

/// Reads a frame's head; too_short as parse_head.
head_status read_head(int fd, frame& f) {
  char h[frame_head];
  if (!read_exact(fd, h, frame_head))
    return head_status::closed;
  return parse_head(h, f);
}

/// The frames of one connection's read loop, read through a buffer: one recv brings a frame's
/// head with its body, and the frames queued behind it, where reading each head and each body
/// exactly took two recv calls a frame. A body larger than half the buffer is read straight
/// into its destination after what the buffer held of it.
class frame_reader {
public:
  explicit frame_reader(int fd) : fd_(fd), buf_(capacity) {
  }

  head_status head(frame& f) {
    if (!fill(frame_head))
      return head_status::closed;
    auto status = parse_head(buf_.data() + begin_, f);
    begin_ += frame_head;
    return status;
  }

  /// The next n bytes into out; false as read_exact.
  bool body(char* out, size_t n) {
    size_t have = std::min(n, end_ - begin_);
    std::memcpy(out, buf_.data() + begin_, have);
    begin_ += have;
    out += have;
    n -= have;
    if (n == 0)
      return true;
    if (n > capacity / 2)
      return read_exact(fd_, out, n);
    if (!fill(n))
      return false;
    std::memcpy(out, buf_.data() + begin_, n);
    begin_ += n;
    return true;
  }

private:
  static constexpr size_t capacity = 64 * 1024;

  /// At least `want` (<= capacity) bytes buffered; false at the end of the stream or on an
  /// error (errno as read_exact).
  bool fill(size_t want) {
    if (end_ - begin_ >= want)
      return true;
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    while (end_ < want) {
      auto r = read_some(fd_, buf_.data() + end_, capacity - end_);
      if (r == 0)
        return false;
      end_ += r;
    }
    return true;
  }

  int fd_;
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0;
};

void set_recv_timeout(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

uint64_t random_u64() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}

std::string why_closed(const char* what) {
  return std::string{what} + (errno == 0 ? ": the other side closed it" : ": ")
         + (errno == 0 ? "" : std::strerror(errno));
}

} // namespace

bool local_link_enabled() {
  const char* v = std::getenv("COMB_LOCAL_LINK");
  return !(v && std::strcmp(v, "off") == 0);
}

// ---------------------------------------------------------------------------------------------
// The compute process's side.

local_link_peer::local_link_peer(caf::actor_system& sys, int fd) : sys_(sys), fd_(fd) {}

local_link_peer::~local_link_peer() {
  ::close(fd_);
}

bool local_link_peer::reply(uint64_t key, uint32_t gen, uint32_t idx,
                            const caf::expected<task_result>& r) {
  std::lock_guard<std::mutex> guard{write_mu_};
  buf_.clear();
  uint8_t type = r ? result : failure;
  caf::error err;
  {
    caf::binary_serializer sink{sys_, buf_};
    if (r)
      err = sink(const_cast<task_result&>(*r));
    else
      err = sink(const_cast<caf::error&>(r.error()));
  }
  if (!err && buf_.size() > max_reply_bytes)
    err = make_error(errc::too_large, "task " + std::to_string(r ? r->task_id : 0) + ": its result is "
                                        + std::to_string(buf_.size())
                                        + " bytes, more than the local link carries ("
                                        + std::to_string(max_reply_bytes) + ")");
  if (err) {
    buf_.clear();
    type = failure;
    caf::binary_serializer sink{sys_, buf_};
    auto e = make_error(errc::protocol_error, "local link: cannot send a result: " + describe(err));
    if (sink(e))
      return false;
  }
  char head[frame_head];
  put_head(head, type, key, gen, idx, buf_.size());
  bool ok = write_frame(fd_, head, buf_.data(), buf_.size());
  if (buf_.capacity() > (size_t{16} << 20))
    std::vector<char>{}.swap(buf_);
  return ok;
}

local_link_server::local_link_server(caf::actor_system& sys, caf::actor_addr compute, int fd,
                                     std::string name, uint64_t token)
  : sys_(sys), compute_(std::move(compute)), listen_fd_(fd), name_(std::move(name)),
    token_(token) {}

caf::expected<std::shared_ptr<local_link_server>>
local_link_server::start(caf::actor_system& sys, caf::actor_addr compute) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return make_error(errc::network_error,
                      std::string{"local link: cannot make a socket: "} + std::strerror(errno));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(random_u64()));
  auto name = "comb-compute-" + std::to_string(::getpid()) + "-" + hex;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 64) != 0) {
    auto e = errno;
    ::close(fd);
    return make_error(errc::network_error, "local link: cannot listen on @" + name + ": "
                                             + std::strerror(e));
  }
  std::shared_ptr<local_link_server> s{
    new local_link_server(sys, std::move(compute), fd, std::move(name), random_u64())};
  s->acceptor_ = std::thread{[p = s.get()] { p->accept_loop(); }};
  return s;
}

local_link_server::~local_link_server() {
  stop();
}

void local_link_server::stop() {
  if (stopping_.exchange(true))
    return;
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable())
    acceptor_.join();
  ::close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> guard{mu_};
    for (auto& p : peers_)
      ::shutdown(p->fd_, SHUT_RDWR);
    threads = std::move(threads_);
    peers_.clear();
  }
  for (auto& t : threads)
    if (t.joinable())
      t.join();
}

void local_link_server::accept_loop() {
  for (;;) {
    // poll with a timeout: a shut-down listening socket wakes it (POLLHUP), and stopping_ is
    // checked at least every 200 ms besides.
    pollfd p{listen_fd_, POLLIN, 0};
    int n = ::poll(&p, 1, 200);
    if (stopping_.load())
      return;
    if (n <= 0 || !(p.revents & POLLIN))
      continue;
    int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (stopping_.load())
        return;
      continue; // EINTR, ECONNABORTED, EMFILE (the next poll tries again)
    }
    ucred cred{};
    socklen_t cl = sizeof cred;
    if (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || cred.uid != ::geteuid()) {
      ::close(c);
      continue;
    }
    auto peer = std::make_shared<local_link_peer>(sys_, c);
    std::lock_guard<std::mutex> guard{mu_};
    if (stopping_.load())
      return; // the peer closes its socket
    // Forget connections that ended (their threads are done; join them now).
    for (size_t i = 0; i < peers_.size();) {
      if (peers_[i]->done_.load()) {
        threads_[i].join();
        peers_.erase(peers_.begin() + static_cast<std::ptrdiff_t>(i));
        threads_.erase(threads_.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    ++connections_;
    peers_.push_back(peer);
    threads_.emplace_back([this, peer] { serve(peer); });
  }
}

void local_link_server::serve(std::shared_ptr<local_link_peer> peer) {
  serve_frames(peer);
  ::shutdown(peer->fd_, SHUT_RDWR);
  peer->done_.store(true);
}

void local_link_server::serve_frames(const std::shared_ptr<local_link_peer>& peer) {
  int fd = peer->fd_;
  auto refuse = [&](const std::string& why) {
    std::cerr << "comb compute: local link @" << name_ << ": " << why
              << "; closing that connection (its function actor goes on over CAF)\n";
  };
  frame f;
  set_recv_timeout(fd, 2000);
  if (read_head(fd, f) != head_status::ok || f.type != hello || f.key != token_ || f.body != 0)
    return; // a stranger or a stale token: closed without a word
  set_recv_timeout(fd, 0);
  {
    char head[frame_head];
    put_head(head, hello_ok, 0, 0, 0, 0);
    std::lock_guard<std::mutex> guard{peer->write_mu_};
    if (!write_frame(fd, head, nullptr, 0))
      return;
  }
  std::vector<char> body;
  frame_reader reader{fd};
  for (;;) {
    if (auto h = reader.head(f); h != head_status::ok) {
      if (h == head_status::too_short)
        refuse("a frame whose length (" + std::to_string(f.body) + ") is shorter than its head");
      else if (errno != 0 && !stopping_.load())
        refuse(why_closed("reading a frame"));
      break;
    }
    if (f.type != shm_task && f.type != blob_task && f.type != piece_task) {
      refuse("a frame of type " + std::to_string(f.type) + " where a task was expected");
      break;
    }
    if (f.body > max_request_bytes) {
      refuse("a task frame of " + std::to_string(f.body) + " bytes (at most "
             + std::to_string(max_request_bytes) + ")");
      break;
    }
    body.resize(f.body);
    if (!reader.body(body.data(), body.size())) {
      refuse(why_closed("reading a task frame"));
      break;
    }
    stage_trace::mark("cmp.link");
    auto to = caf::actor_cast<caf::actor>(compute_);
    if (!to)
      break; // the compute actor is gone
    if (f.type == piece_task) {
      // The compute actor decodes it (and answers a damaged one with an error).
      caf::anon_send(to, link_piece_atom::value, peer, f.key, f.gen, f.idx, std::move(body));
      body = std::vector<char>{};
      continue;
    }
    std::vector<char> header;
    caf::binary_deserializer source{sys_, body};
    if (f.type == shm_task) {
      shm_ref ref;
      if (auto err = source(header, ref)) {
        refuse("a shared-memory task frame that does not parse: " + sys_.render(err));
        break;
      }
      caf::anon_send(to, link_shm_atom::value, peer, f.key, f.gen, std::move(header),
                     std::move(ref));
    } else {
      blob_file_ref ref;
      if (auto err = source(header, ref)) {
        refuse("a blob-file task frame that does not parse: " + sys_.render(err));
        break;
      }
      caf::anon_send(to, link_blob_atom::value, peer, f.key, f.gen, std::move(header),
                     std::move(ref));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The node's side.

local_link_client::local_link_client(caf::actor_system& sys, int fd, caf::actor_addr owner,
                                     uint64_t serial)
  : sys_(sys), fd_(fd), owner_(std::move(owner)), serial_(serial) {}

caf::expected<std::unique_ptr<local_link_client>>
local_link_client::connect(caf::actor_system& sys, const std::string& name, uint64_t token,
                           caf::actor_addr owner, uint64_t serial) {
  sockaddr_un addr{};
  if (name.empty() || name.size() + 1 > sizeof addr.sun_path)
    return make_error(errc::invalid_argument, "local link: bad socket name '" + name + "'");
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return make_error(errc::network_error,
                      std::string{"local link: cannot make a socket: "} + std::strerror(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  auto fail = [&](const std::string& what) -> caf::error {
    auto e = errno;
    ::close(fd);
    return make_error(errc::network_error, "local link @" + name + ": " + what
                                             + (e != 0 ? std::string{": "} + std::strerror(e)
                                                       : std::string{}));
  };
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0)
    return fail("cannot connect");
  char head[frame_head];
  put_head(head, hello, token, 0, 0, 0);
  if (!write_frame(fd, head, nullptr, 0))
    return fail("cannot send the token");
  set_recv_timeout(fd, 2000);
  frame f;
  if (read_head(fd, f) != head_status::ok || f.type != hello_ok || f.body != 0)
    return fail("the compute process did not accept the connection");
  set_recv_timeout(fd, 0);
  std::unique_ptr<local_link_client> c{new local_link_client(sys, fd, std::move(owner), serial)};
  c->reader_ = std::thread{[p = c.get()] { p->read_loop(); }};
  return c;
}

local_link_client::~local_link_client() {
  up_.store(false);
  ::shutdown(fd_, SHUT_RDWR);
  if (reader_.joinable())
    reader_.join();
  ::close(fd_);
}

template <class Ref>
caf::error local_link_client::send_task(uint8_t type, uint64_t key, uint32_t gen,
                                        const std::vector<char>& header, const Ref& ref) {
  if (!up_.load())
    return make_error(errc::unavailable, "local link is down");
  buf_.clear();
  {
    caf::binary_serializer sink{sys_, buf_};
    if (auto err = sink(const_cast<std::vector<char>&>(header), const_cast<Ref&>(ref)))
      return err;
  }
  return send_frame(type, key, gen, 0, buf_.data(), buf_.size());
}

caf::error local_link_client::send_frame(uint8_t type, uint64_t key, uint32_t gen, uint32_t idx,
                                         const char* body, size_t size) {
  if (!up_.load())
    return make_error(errc::unavailable, "local link is down");
  if (size > max_request_bytes)
    return make_error(errc::too_large, "local link: a frame of " + std::to_string(size)
                                         + " bytes (at most " + std::to_string(max_request_bytes)
                                         + ")");
  char head[frame_head];
  put_head(head, type, key, gen, idx, size);
  if (!write_frame(fd_, head, body, size)) {
    up_.store(false);
    return make_error(errc::unavailable,
                      std::string{"local link: cannot send a task: "} + std::strerror(errno));
  }
  return {};
}

caf::error local_link_client::send_piece(uint64_t key, uint32_t gen, uint32_t idx,
                                         const std::vector<char>& bytes) {
  return send_frame(piece_task, key, gen, idx, bytes.data(), bytes.size());
}

caf::error local_link_client::send_shm(uint64_t key, uint32_t gen,
                                       const std::vector<char>& header, const shm_ref& ref) {
  return send_task(shm_task, key, gen, header, ref);
}

caf::error local_link_client::send_blob(uint64_t key, uint32_t gen,
                                        const std::vector<char>& header,
                                        const blob_file_ref& ref) {
  return send_task(blob_task, key, gen, header, ref);
}

void local_link_client::read_loop() {
  std::vector<char> body;
  std::string why;
  frame_reader reader{fd_};
  for (;;) {
    frame f;
    if (auto h = reader.head(f); h != head_status::ok) {
      if (h == head_status::too_short)
        why = "a frame whose length (" + std::to_string(f.body) + ") is shorter than its head";
      else if (up_.load() && errno != 0)
        why = why_closed("reading a reply");
      break;
    }
    if (f.type != result && f.type != failure) {
      why = "a frame of type " + std::to_string(f.type) + " where a reply was expected";
      break;
    }
    if (f.body > max_reply_bytes) {
      why = "a reply of " + std::to_string(f.body) + " bytes";
      break;
    }
    body.resize(f.body);
    if (!reader.body(body.data(), body.size())) {
      why = why_closed("reading a reply");
      break;
    }
    caf::binary_deserializer source{sys_, body};
    auto to = caf::actor_cast<caf::actor>(owner_);
    if (!to)
      break;
    if (f.type == result) {
      task_result r;
      if (auto err = source(r)) {
        why = "a reply that does not parse: " + sys_.render(err);
        break;
      }
      stage_trace::mark("fn.link", r.task_id);
      caf::anon_send(to, link_reply_atom::value, f.key, f.gen, std::move(r));
    } else {
      caf::error e;
      if (auto err = source(e)) {
        why = "an error reply that does not parse: " + sys_.render(err);
        break;
      }
      caf::anon_send(to, link_error_atom::value, f.key, f.gen, f.idx, std::move(e));
    }
    if (body.capacity() > (size_t{16} << 20))
      std::vector<char>{}.swap(body);
  }
  bool was_up = up_.exchange(false);
  if (!why.empty() && was_up)
    std::cerr << "comb: local link to the compute process closed (" << why
              << "); its tasks go over CAF\n";
  if (auto to = caf::actor_cast<caf::actor>(owner_))
    caf::anon_send(to, link_down_atom::value, serial_);
}

} // namespace comb::runtime
