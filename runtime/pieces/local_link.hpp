// comb::runtime local link: on one host, the messages of the compute path (a whole task whose
// bytes are in shared memory or in a blob file: its header and the shm_ref / blob_file_ref;
// a piece with its bytes; then the reply, a task_result or an error) go over a Unix-domain
// socket between the function actor and the compute process instead of through CAF's
// middleman. The middleman moves each message through its
// multiplexer thread on both sides (its BASP broker, loopback TCP, two more thread wake-ups
// per direction): on this path that was most of a small task's round trip (README "Quiet
// figures, eleventh session"). Here the function actor writes the request itself, a reader
// thread in the compute process hands it to the compute actor, the compute actor writes the
// result itself, and a reader thread in the node hands it to the function actor.
//
// Everything else (pings, models, stats, the connection's liveness) stays on CAF. The link is found through CAF: the compute actor answers (local_link_atom) with its
// socket's name (Linux's abstract namespace: nothing on disk, gone with the process) and a
// random token; the function actor connects, sends the token, and uses the link once the
// server accepted it. The server also checks that the peer runs as its own user
// (SO_PEERCRED). A compute process on another host, in another network namespace, or an
// older `comb compute` (no such message) leaves the function actor on CAF, silently.
// COMB_LOCAL_LINK=off turns it off on either side (for measurements).
//
// Frames: u32 length (of what follows), u8 type, u64 key, u32 generation, u32 piece index
// (echoed in the reply), then the body: a piece's encoded bytes as they are, anything else
// serialized with CAF's binary serializer (the same inspectors as over the middleman). A
// request body is at most max_request_bytes; a frame of another type, a longer one or a body
// that does not parse closes the connection with a named error on stderr.
#pragma once

#include "runtime/pieces/compute_types.hpp"
#include "runtime/pieces/shm_pieces.hpp"

#include <caf/actor_addr.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/allowed_unsafe_message_type.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace comb::runtime {

/// (local_link_atom) -> (std::string name, uint64_t token): where the compute process's local
/// link listens ("" when it has none).
using local_link_atom = caf::atom_constant<caf::atom("locallink")>;

/// To the compute actor, from a link's reader thread: (link_shm_atom, link_peer_ptr, key, gen,
/// header, shm_ref) and (link_blob_atom, link_peer_ptr, key, gen, header, blob_file_ref): the
/// same tasks as shm_piece_atom / blob_piece_atom; the result goes to peer->reply(key, gen).
using link_shm_atom = caf::atom_constant<caf::atom("lnkshm")>;
using link_blob_atom = caf::atom_constant<caf::atom("lnkblob")>;
/// (link_piece_atom, link_peer_ptr, key, gen, idx, std::vector<char> encoded_piece): as
/// piece_atom; the reply goes to peer->reply(key, gen, idx).
using link_piece_atom = caf::atom_constant<caf::atom("lnkpiece")>;
/// To the function actor, from its link's reader thread: (link_reply_atom, key, gen,
/// task_result), (link_error_atom, key, gen, idx, caf::error), and (link_down_atom, uint64_t
/// serial) once the link is closed (the compute process went away or broke the protocol).
using link_reply_atom = caf::atom_constant<caf::atom("lnkreply")>;
using link_error_atom = caf::atom_constant<caf::atom("lnkerror")>;
using link_down_atom = caf::atom_constant<caf::atom("lnkdown")>;

/// The largest request body the compute process reads (a piece of at most 1 MiB of payload
/// and its header, or a header and a reference).
inline constexpr uint32_t max_request_bytes = uint32_t{2} << 20;
/// The largest reply frame (a task's output); a larger result is answered as an error.
inline constexpr uint64_t max_reply_bytes = uint64_t{1} << 30;

/// False when COMB_LOCAL_LINK=off.
bool local_link_enabled();

class local_link_server;

/// The compute process's end of one connection: where a task's result goes. Thread-safe.
class local_link_peer {
public:
  local_link_peer(caf::actor_system& sys, int fd);
  ~local_link_peer();
  local_link_peer(const local_link_peer&) = delete;
  local_link_peer& operator=(const local_link_peer&) = delete;

  /// Sends the task's result (or its error) back. False when the connection is gone (the
  /// function actor then retries the task as after any lost connection).
  bool reply(uint64_t key, uint32_t gen, uint32_t idx, const caf::expected<task_result>& r);

private:
  friend class local_link_server;
  caf::actor_system& sys_;
  int fd_;
  /// Its reader thread has ended (the server joins it and forgets the connection).
  std::atomic<bool> done_{false};
  std::mutex write_mu_;
  std::vector<char> buf_;
};

/// The compute process's listener. Its threads (one accepting, one reading per connection)
/// send each task to `compute` as a message; replies go out from whichever thread calls
/// local_link_peer::reply.
class local_link_server {
public:
  /// Listens on a fresh abstract socket. An error names why (the caller goes on without).
  static caf::expected<std::shared_ptr<local_link_server>> start(caf::actor_system& sys,
                                                                 caf::actor_addr compute);
  ~local_link_server();
  local_link_server(const local_link_server&) = delete;
  local_link_server& operator=(const local_link_server&) = delete;

  /// The socket's name in the abstract namespace (without the leading NUL).
  const std::string& name() const { return name_; }
  uint64_t token() const { return token_; }
  /// Connections accepted so far (stats).
  uint64_t connections() const { return connections_.load(); }
  /// Stops accepting, closes every connection and joins the threads.
  void stop();

private:
  local_link_server(caf::actor_system& sys, caf::actor_addr compute, int fd, std::string name,
                    uint64_t token);
  void accept_loop();
  void serve(std::shared_ptr<local_link_peer> peer);
  // The connection's frames until it ends (serve() then shuts it and marks the peer done).
  void serve_frames(const std::shared_ptr<local_link_peer>& peer);

  caf::actor_system& sys_;
  caf::actor_addr compute_;
  int listen_fd_;
  std::string name_;
  uint64_t token_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> connections_{0};
  std::mutex mu_;
  std::vector<std::shared_ptr<local_link_peer>> peers_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

/// The node's end: one connection, owned by one function actor (send from its thread); a
/// reader thread hands replies to `owner` as messages.
class local_link_client {
public:
  /// Connects to `name`, presents `token`, and waits (up to 2 s) for the server to accept.
  /// An error names why (the caller stays on CAF).
  static caf::expected<std::unique_ptr<local_link_client>>
  connect(caf::actor_system& sys, const std::string& name, uint64_t token, caf::actor_addr owner,
          uint64_t serial);
  ~local_link_client();
  local_link_client(const local_link_client&) = delete;
  local_link_client& operator=(const local_link_client&) = delete;

  /// Sends a whole task; an error when the link is down (the caller sends it over CAF).
  caf::error send_shm(uint64_t key, uint32_t gen, const std::vector<char>& header,
                      const shm_ref& ref);
  caf::error send_blob(uint64_t key, uint32_t gen, const std::vector<char>& header,
                       const blob_file_ref& ref);
  /// Sends piece `idx` of a task (its encoded bytes, at most max_request_bytes).
  caf::error send_piece(uint64_t key, uint32_t gen, uint32_t idx, const std::vector<char>& bytes);
  bool up() const { return up_.load(); }
  uint64_t serial() const { return serial_; }

private:
  local_link_client(caf::actor_system& sys, int fd, caf::actor_addr owner, uint64_t serial);
  template <class Ref>
  caf::error send_task(uint8_t type, uint64_t key, uint32_t gen, const std::vector<char>& header,
                       const Ref& ref);
  caf::error send_frame(uint8_t type, uint64_t key, uint32_t gen, uint32_t idx, const char* body,
                        size_t size);
  void read_loop();

  caf::actor_system& sys_;
  int fd_;
  caf::actor_addr owner_;
  uint64_t serial_;
  std::atomic<bool> up_{true};
  std::vector<char> buf_;
  std::thread reader_;
};

} // namespace comb::runtime

// The compute actor gets a link's peer in its messages (in this process only).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<comb::runtime::local_link_peer>)
