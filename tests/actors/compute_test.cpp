// Multi-process tests on loopback: a real `comb compute` process, reached over TCP through
// CAF's middleman by function actors and by a raw test client in this process. Covers the
// 50 MiB task from 8 senders, every malformed piece, the memory bound, batching and priority,
// model load/activate with provenance, and the compute process killed and restarted mid-run.
// In process (a compute actor in the test's actor system): an MLP run by the executor through
// pieces, the model memory bound, superseded versions unloaded and model_not_loaded.
#include "actors/compute_actor.hpp"
#include "actors/function_actor.hpp"
#include "kernels/backend.hpp"
#include "kernels/safetensors.hpp"
#include "runtime/pieces/builtin_tasks.hpp"
#include "runtime/pieces/compute_types.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/kernel_runners.hpp"
#include "runtime/pieces/local_link.hpp"
#include "runtime/pieces/model_digest.hpp"
#include "runtime/pieces/model_runner.hpp"
#include "runtime/system_config.hpp"
#include "tests/compute_util.hpp"
#include "tests/test_util.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

using namespace comb;
using namespace comb::runtime;
using namespace std::chrono_literals;

namespace {

using handle_t = decltype(std::declval<caf::scoped_actor&>()->request(
  std::declval<caf::actor>(), std::chrono::seconds{1}, stats_atom::value));

struct client_config : system_config {
  client_config() : system_config(2) { add_compute_types(*this); }
};

/// The test's side: an actor system with the middleman, and helpers to talk to compute.
struct client {
  client_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::vector<caf::actor> spawned;

  ~client() {
    for (auto& a : spawned)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  }

  caf::actor connect(uint16_t port) {
    auto a = sys.middleman().remote_actor("127.0.0.1", port);
    REQUIRE_MESSAGE(a, "remote_actor: " << sys.render(a.error()));
    return *a;
  }

  caf::expected<task_result> send_raw(const caf::actor& compute, const std::vector<char>& bytes) {
    caf::expected<task_result> out = make_error(errc::timeout, "no reply");
    self->request(compute, 20s, piece_atom::value, bytes)
      .receive([&](task_result& r) { out = std::move(r); },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  caf::expected<task_result> run(const caf::actor& fn, task_request req,
                                 std::chrono::seconds timeout = 60s) {
    caf::expected<task_result> out = make_error(errc::timeout, "no reply");
    self->request(fn, timeout, run_atom::value, std::move(req))
      .receive([&](task_result& r) { out = std::move(r); },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  nlohmann::json stats(const caf::actor& compute) {
    nlohmann::json out;
    self->request(compute, 10s, stats_atom::value)
      .receive([&](std::string& s) { out = nlohmann::json::parse(s); },
               [&](caf::error& e) { FAIL("stats: " << sys.render(e)); });
    return out;
  }

  caf::actor function(uint16_t port, uint32_t max_attempts = 50,
                      std::chrono::milliseconds request_timeout = 60s,
                      bool shared_memory = true) {
    actors::function_config fc;
    fc.compute_port = port;
    fc.shared_memory = shared_memory;
    fc.max_attempts = max_attempts;
    fc.request_timeout = request_timeout;
    fc.retry_delay = 100ms;
    spawned.push_back(actors::spawn_function_actor(sys, fc));
    return spawned.back();
  }
};

std::vector<char> random_bytes(size_t n, uint32_t seed) {
  std::vector<char> out(n);
  std::mt19937_64 rng{seed};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    auto x = rng();
    std::memcpy(out.data() + i, &x, 8);
  }
  for (; i < n; ++i)
    out[i] = static_cast<char>(rng());
  return out;
}

task_request whole_task(uint64_t id, piece_kind kind, std::string model, std::vector<char> bytes,
                        uint32_t version = 0) {
  task_request r;
  r.task_id = id;
  r.kind = static_cast<uint8_t>(kind);
  r.model = std::move(model);
  r.model_version = version;
  r.bytes = std::move(bytes);
  return r;
}

std::vector<char> raw_piece(uint64_t task, uint32_t no, uint32_t count, size_t size,
                            std::string model = "checksum") {
  std::vector<char> payload(size, 'p');
  return encode_piece(task, piece_kind::infer, model, 0, no, count, payload.data(), payload.size());
}

std::string text(const caf::expected<task_result>& r) {
  return r ? std::string{"ok"} : describe(r.error());
}

std::vector<char> as_bytes(const std::string& s) {
  return std::vector<char>(s.begin(), s.end());
}

/// An "x" f32 [n, width] tensor of normal values.
tensor_pack mlp_input(int64_t n, int64_t width, uint32_t seed) {
  std::mt19937_64 rng{seed};
  std::normal_distribution<float> nd;
  std::vector<float> x(static_cast<size_t>(n * width));
  for (auto& v : x)
    v = nd(rng);
  tensor_pack p;
  p.add("x", tensor_dtype::f32, {n, width}, x.data());
  return p;
}

/// A compute actor in the test's own actor system, reached without the middleman.
struct local_compute {
  client c;
  caf::actor compute;

  explicit local_compute(actors::compute_config cfg) {
    compute = actors::spawn_compute_actor(c.sys, std::move(cfg));
  }
  ~local_compute() { caf::anon_send_exit(compute, caf::exit_reason::user_shutdown); }

  /// Sends a whole task as at least `pieces` pieces (specs on piece 0), all but the last
  /// waited for; returns the handle of the last piece's reply.
  handle_t request(uint64_t id, piece_kind kind, const std::string& model, uint32_t version,
                   const std::vector<char>& bytes, const std::vector<tensor_spec>& specs = {},
                   uint32_t pieces = 1) {
    pieces = std::max(pieces, piece_count_for(bytes.size()));
    auto cut = [&](uint32_t i) { return bytes.size() * i / pieces; };
    auto piece = [&](uint32_t i) {
      return encode_piece(id, kind, model, version, i, pieces, bytes.data() + cut(i),
                          cut(i + 1) - cut(i), i == 0 ? specs : std::vector<tensor_spec>{});
    };
    for (uint32_t i = 0; i + 1 < pieces; ++i) {
      auto r = c.send_raw(compute, piece(i));
      REQUIRE_MESSAGE(r, text(r));
    }
    return c.self->request(compute, 60s, piece_atom::value, piece(pieces - 1));
  }

  caf::expected<task_result> send(uint64_t id, piece_kind kind, const std::string& model,
                                  uint32_t version, const std::vector<char>& bytes,
                                  const std::vector<tensor_spec>& specs = {}) {
    caf::expected<task_result> out = make_error(errc::timeout, "no reply");
    request(id, kind, model, version, bytes, specs)
      .receive([&](task_result& r) { out = std::move(r); },
               [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  nlohmann::json models() {
    nlohmann::json out;
    c.self->request(compute, 10s, models_atom::value)
      .receive([&](std::string& s) { out = nlohmann::json::parse(s); },
               [&](caf::error& e) { FAIL("models: " << describe(e)); });
    return out;
  }
};

/// Counts a function actor's reports that the compute process gave no reply for its
/// request_timeout (its piece_error provenance records).
struct silence_log : provenance_hook {
  std::atomic<int> silences{0};
  void before_commit(storage::transaction&, invocation_record&) override {}
  void after_commit(const invocation_record&, bool) override {}
  void on_failed(const invocation_record&) override {}
  void on_message(const message_record& m) override {
    if (m.kind == "piece_error" && m.payload.find("no reply") != std::string::npos)
      ++silences;
  }
};

} // namespace

TEST_SUITE("actors.compute") {
  TEST_CASE("a 50 MiB payload sent as pieces by 8 function actors reassembles byte for byte") {
    test::compute_child proc;
    client c;
    auto payload = random_bytes(50u << 20, 50);
    auto count = piece_count_for(payload.size());
    REQUIRE(count == 50);
    std::vector<caf::actor> senders;
    for (int i = 0; i < 8; ++i)
      senders.push_back(c.function(proc.port()));
    // Sender i sends a contiguous share of the 50 pieces; all shares go out at once.
    std::vector<handle_t> handles;
    uint32_t next = 0;
    for (uint32_t i = 0; i < 8; ++i) {
      uint32_t n = count / 8 + (i < count % 8 ? 1 : 0);
      task_request req;
      req.task_id = 5000;
      req.kind = static_cast<uint8_t>(piece_kind::infer);
      req.model = "echo";
      req.piece_count = count;
      req.first_piece = next;
      auto begin = payload.begin() + static_cast<size_t>(next) * max_piece_payload;
      auto end = std::min(payload.end(), begin + static_cast<size_t>(n) * max_piece_payload);
      req.bytes.assign(begin, end);
      next += n;
      handles.push_back(c.self->request(senders[i], 60s, run_atom::value, std::move(req)));
    }
    REQUIRE(next == count);
    int complete = 0;
    for (auto& h : handles)
      h.receive(
        [&](task_result& r) {
          CHECK(r.task_id == 5000);
          if (r.complete) {
            ++complete;
            CHECK(r.model == "echo");
            CHECK(r.input_bytes == payload.size());
            REQUIRE(r.output.size() == payload.size());
            CHECK(r.output == payload);
          }
        },
        [&](caf::error& e) { FAIL("sender failed: " << describe(e)); });
    CHECK(complete == 1);
    auto compute = c.connect(proc.port());
    auto st = c.stats(compute);
    CHECK(st["incomplete_tasks"] == 0);
    CHECK(st["held_bytes"] == 0);
  }

  TEST_CASE("on one host a whole task goes through shared memory, with the same result as "
            "pieces over TCP; small tasks and shares of a task go as pieces") {
    test::compute_child proc;
    client c;
    auto compute = c.connect(proc.port());
    auto input = random_bytes(3 * max_piece_payload + 5, 21);
    auto fn = c.function(proc.port());
    auto r = c.run(fn, whole_task(1, piece_kind::infer, "checksum", input));
    REQUIRE_MESSAGE(r, text(r));
    CHECK(r->output == checksum_output({input}));
    CHECK(r->input_bytes == input.size());
    auto st = c.stats(compute);
    CHECK(st["shm_tasks"] == 1);
    CHECK(st["shm_segments_mapped"] == 1);
    // An echo of 5 MiB through the segment comes back byte for byte.
    auto big = random_bytes(5 * max_piece_payload + 3, 22);
    auto e = c.run(fn, whole_task(2, piece_kind::infer, "echo", big));
    REQUIRE_MESSAGE(e, text(e));
    CHECK(e->output == big);
    // Below shared_memory_min (32 KiB): a piece over TCP.
    auto small = random_bytes(1000, 23);
    auto s1 = c.run(fn, whole_task(3, piece_kind::infer, "checksum", small));
    REQUIRE_MESSAGE(s1, text(s1));
    CHECK(s1->output == checksum_output({small}));
    CHECK(c.stats(compute)["shm_tasks"] == 2);
    // Shared memory off: the same task as pieces, the same result.
    auto tcp = c.function(proc.port(), 50, 60s, /*shared_memory=*/false);
    auto r2 = c.run(tcp, whole_task(4, piece_kind::infer, "checksum", input));
    REQUIRE_MESSAGE(r2, text(r2));
    CHECK(r2->output == r->output);
    CHECK(c.stats(compute)["shm_tasks"] == 2);
    // The function actor's segment is removed when it stops.
    c.self->send_exit(fn, caf::exit_reason::user_shutdown);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
      gone = true;
      for (auto& f : std::filesystem::directory_iterator("/dev/shm"))
        if (f.path().filename().string().rfind("comb-pieces-" + std::to_string(::getpid()) + "-",
                                                0)
            == 0)
          gone = false;
      if (!gone)
        std::this_thread::sleep_for(20ms);
    }
    CHECK(gone);
  }

  TEST_CASE("on one host whole tasks go over the local link once it is up, with the same "
            "results and errors; strangers and bad frames are shut out; COMB_LOCAL_LINK=off "
            "keeps them on CAF") {
    test::compute_child proc;
    client c;
    auto compute = c.connect(proc.port());
    auto fn = c.function(proc.port());
    // The first task goes through CAF while the function actor asks for the link.
    std::vector<std::vector<char>> inputs;
    for (uint32_t i = 0; i < 6; ++i) {
      inputs.push_back(random_bytes(2 * max_piece_payload + 17 * i, 600 + i));
      auto r = c.run(fn, whole_task(600 + i, piece_kind::infer, "checksum", inputs.back()));
      REQUIRE_MESSAGE(r, text(r));
      CHECK(r->complete);
      CHECK(r->output == checksum_output({inputs.back()}));
    }
    auto st = c.stats(compute);
    CHECK(st["shm_tasks"] == 6);
    CHECK(st["local_link_connections"] == 1);
    auto via_link = st["local_link_tasks"].get<uint64_t>();
    CHECK(via_link >= 4);
    // A large result comes back over the link byte for byte.
    auto big = random_bytes(5 * max_piece_payload + 3, 610);
    auto e = c.run(fn, whole_task(610, piece_kind::infer, "echo", big));
    REQUIRE_MESSAGE(e, text(e));
    CHECK(e->output == big);
    // A task below shared_memory_min goes over the link as a piece, bytes and all.
    auto small = random_bytes(1000, 613);
    auto sm = c.run(fn, whole_task(613, piece_kind::infer, "checksum", small));
    REQUIRE_MESSAGE(sm, text(sm));
    CHECK(sm->output == checksum_output({small}));
    CHECK(c.stats(compute)["shm_tasks"] == 7);
    via_link += 1;
    // An error comes back over the link as the same error, naming the problem.
    auto bad = c.run(fn, whole_task(611, piece_kind::infer, "no_such_model", inputs[0]));
    REQUIRE_FALSE(bad);
    CHECK_MESSAGE(describe(bad.error()).find("no_such_model") != std::string::npos,
                  describe(bad.error()));
    CHECK(c.stats(compute)["local_link_tasks"].get<uint64_t>() == via_link + 2);

    // The link's name and token, as a function actor asks for them.
    std::string name;
    uint64_t token = 0;
    c.self->request(compute, 10s, local_link_atom::value)
      .receive(
        [&](std::string& n, uint64_t t) {
          name = n;
          token = t;
        },
        [&](caf::error& err) { FAIL(describe(err)); });
    REQUIRE_FALSE(name.empty());
    CHECK(c.stats(compute)["local_link"] == "@" + name);
    auto raw_connect = [&] {
      int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::memcpy(addr.sun_path + 1, name.data(), name.size());
      auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
      REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
      timeval tv{5, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      return fd;
    };
    // u32 length, u8 type, u64 key, u32 generation, u32 piece index.
    auto frame = [](uint8_t type, uint64_t key, const std::string& body) {
      std::string f(21, '\0');
      uint32_t len = static_cast<uint32_t>(17 + body.size());
      std::memcpy(f.data(), &len, 4);
      f[4] = static_cast<char>(type);
      std::memcpy(f.data() + 5, &key, 8);
      return f + body;
    };
    auto closed_by_server = [](int fd) {
      char b[64];
      ssize_t n = ::recv(fd, b, sizeof b, 0);
      return n == 0;
    };
    {
      // A stranger with a wrong token is closed without a word.
      int fd = raw_connect();
      auto hello = frame(1, token + 1, "");
      REQUIRE(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) == ssize_t(hello.size()));
      CHECK(closed_by_server(fd));
      ::close(fd);
    }
    for (auto& junk : {frame(9, 1, "xyz"), frame(3, 1, std::string(40, '\xff')),
                       std::string("\x03\x00\x00\x00", 4) + std::string(17, '\0')}) {
      // With the token: a frame of an unknown type, a task that does not parse, a length
      // shorter than a frame's head: each closes that connection.
      int fd = raw_connect();
      auto hello = frame(1, token, "");
      REQUIRE(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) == ssize_t(hello.size()));
      char ok[21];
      REQUIRE(::recv(fd, ok, sizeof ok, MSG_WAITALL) == 21);
      CHECK(ok[4] == 2);
      REQUIRE(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL) == ssize_t(junk.size()));
      CHECK(closed_by_server(fd));
      ::close(fd);
    }
    // Connects with the token and reads the hello's answer.
    auto linked = [&] {
      int fd = raw_connect();
      auto hello = frame(1, token, "");
      REQUIRE(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) == ssize_t(hello.size()));
      char ok[21];
      REQUIRE(::recv(fd, ok, sizeof ok, MSG_WAITALL) == 21);
      return fd;
    };
    // Reads a reply that must be an error naming a piece; returns its key.
    auto piece_error_key = [&](int fd) {
      char head[21];
      REQUIRE(::recv(fd, head, sizeof head, MSG_WAITALL) == 21);
      uint32_t len = 0;
      uint64_t got_key = 0;
      std::memcpy(&len, head, 4);
      std::memcpy(&got_key, head + 5, 8);
      CHECK(head[4] == 6); // an error
      std::string body(len - 17, '\0');
      REQUIRE(::recv(fd, body.data(), body.size(), MSG_WAITALL) == ssize_t(body.size()));
      caf::error e;
      caf::binary_deserializer source{c.sys, body.data(), body.size()};
      REQUIRE_FALSE(source(e));
      CHECK_MESSAGE(describe(e).find("piece") != std::string::npos, describe(e));
      return got_key;
    };
    {
      // A damaged piece is answered with an error that names it (the connection stays).
      int fd = linked();
      for (uint64_t key : {77, 78}) {
        auto junk = frame(7, key, std::string(64, '\x5a'));
        REQUIRE(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL) == ssize_t(junk.size()));
        CHECK(piece_error_key(fd) == key);
      }
      ::close(fd);
    }
    {
      // Frames as a stream delivers them: two in one send (the server's one read takes both),
      // then one of 100,000 bytes sent in three parts, cut inside its head and inside its body.
      int fd = linked();
      auto both = frame(7, 81, std::string(64, '\x5a')) + frame(7, 82, std::string(64, '\x5a'));
      REQUIRE(::send(fd, both.data(), both.size(), MSG_NOSIGNAL) == ssize_t(both.size()));
      CHECK(piece_error_key(fd) == 81);
      CHECK(piece_error_key(fd) == 82);
      auto big = frame(7, 83, std::string(100000, '\x5a'));
      using part = std::pair<size_t, size_t>; // offset, length
      for (auto [at, n] : {part{0, 10}, part{10, 5000}, part{5010, big.size() - 5010}}) {
        REQUIRE(::send(fd, big.data() + at, n, MSG_NOSIGNAL) == ssize_t(n));
        std::this_thread::sleep_for(20ms);
      }
      CHECK(piece_error_key(fd) == 83);
      ::close(fd);
    }
    via_link += 5; // the five damaged pieces above
    // The compute process and the function actor's link go on.
    auto after = c.run(fn, whole_task(612, piece_kind::infer, "checksum", inputs[1]));
    REQUIRE_MESSAGE(after, text(after));
    CHECK(after->output == checksum_output({inputs[1]}));
    CHECK(c.stats(compute)["local_link_tasks"].get<uint64_t>() == via_link + 3);

    // Off (function_config::local_link, as COMB_LOCAL_LINK=off): through CAF only.
    actors::function_config fc;
    fc.compute_port = proc.port();
    fc.local_link = false;
    c.spawned.push_back(actors::spawn_function_actor(c.sys, fc));
    auto plain = c.spawned.back();
    for (uint32_t i = 0; i < 3; ++i) {
      auto r = c.run(plain, whole_task(620 + i, piece_kind::infer, "checksum", inputs[i]));
      REQUIRE_MESSAGE(r, text(r));
      CHECK(r->output == checksum_output({inputs[i]}));
    }
    auto st2 = c.stats(compute);
    CHECK(st2["local_link_tasks"].get<uint64_t>() == via_link + 3);
    CHECK(st2["local_link_connections"] == 7); // the function actor's, and the 6 raw ones
  }

  TEST_CASE("a task whose bytes are read when sent (payload_source) goes through shared memory "
            "or as pieces with the same result; a source that fails fails only its task") {
    test::compute_child proc;
    client c;
    auto compute = c.connect(proc.port());
    auto input = random_bytes(2 * max_piece_payload + 77, 41);
    std::atomic<int> reads{0};
    auto from_source = [&](uint64_t id, bool broken) {
      auto src = std::make_shared<payload_source>();
      src->size = input.size();
      src->read = [&input, &reads, broken](char* dest) -> caf::error {
        ++reads;
        if (broken)
          return make_error(errc::corrupt_data, "blob in test.blob at offset 16: data hash mismatch");
        std::memcpy(dest, input.data(), input.size());
        return {};
      };
      auto r = whole_task(id, piece_kind::infer, "checksum", {});
      r.source = std::move(src);
      return r;
    };
    auto fn = c.function(proc.port());
    auto r = c.run(fn, from_source(1, false));
    REQUIRE_MESSAGE(r, text(r));
    CHECK(r->output == checksum_output({input}));
    CHECK(r->input_bytes == input.size());
    CHECK(c.stats(compute)["shm_tasks"] == 1);
    CHECK(reads == 1);
    // Without shared memory the bytes are read into the request and sent as pieces.
    auto tcp = c.function(proc.port(), 50, 60s, /*shared_memory=*/false);
    auto r2 = c.run(tcp, from_source(2, false));
    REQUIRE_MESSAGE(r2, text(r2));
    CHECK(r2->output == r->output);
    CHECK(c.stats(compute)["shm_tasks"] == 1);
    CHECK(reads == 2);
    // A source that fails: that task gets a named error, nothing reaches the compute
    // process, and the next task runs.
    uint64_t id = 3;
    for (auto& f : {fn, tcp}) {
      auto bad = c.run(f, from_source(id++, true));
      REQUIRE(!bad);
      CHECK(is(bad.error(), errc::corrupt_data));
      CHECK_MESSAGE(describe(bad.error()).find("its input could not be read") != std::string::npos,
                    describe(bad.error()));
      CHECK_MESSAGE(describe(bad.error()).find("data hash mismatch") != std::string::npos,
                    describe(bad.error()));
      auto next = c.run(f, from_source(id++, false));
      REQUIRE_MESSAGE(next, text(next));
      CHECK(next->output == r->output);
    }
    auto st = c.stats(compute);
    CHECK(st["completed"] == 4);
    CHECK(st["incomplete_tasks"] == 0);
  }

  TEST_CASE("a task whose bytes are a pinned blob goes as its segment file's path, read by the "
            "compute process; damaged bytes fail that task by name; a file that is gone sends "
            "that task through shared memory") {
    test::compute_child proc;
    client c;
    auto compute = c.connect(proc.port());
    test::temp_dir dir;
    auto input = random_bytes(3 * max_piece_payload + 5, 43);
    const uint64_t offset = 40;
    auto path = std::filesystem::absolute(dir.path() + "/00000000000000a1.blob").string();
    auto write_file = [&](const std::vector<char>& bytes) {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << std::string(offset, 'x');
      f.write(bytes.data(), std::streamsize(bytes.size()));
    };
    write_file(input);
    const auto hash = XXH3_64bits(input.data(), input.size());
    std::atomic<int> reads{0};
    auto task = [&](uint64_t id, const std::string& file) {
      auto src = std::make_shared<payload_source>();
      src->size = input.size();
      src->read = [&input, &reads](char* dest) -> caf::error {
        ++reads;
        std::memcpy(dest, input.data(), input.size());
        return {};
      };
      src->file = blob_file_ref{file, offset, input.size(), hash};
      auto r = whole_task(id, piece_kind::infer, "checksum", {});
      r.source = std::move(src);
      return r;
    };
    auto fn = c.function(proc.port());
    auto r = c.run(fn, task(1, path));
    REQUIRE_MESSAGE(r, text(r));
    CHECK(r->output == checksum_output({input}));
    CHECK(reads == 0); // the node read nothing
    auto st = c.stats(compute);
    CHECK(st["blob_file_tasks"] == 1);
    CHECK(st["shm_tasks"] == 0);
    // A byte changed in the file: that task fails naming the file, the next one runs.
    auto damaged = input;
    damaged[1000] ^= 0x5a;
    write_file(damaged);
    auto bad = c.run(fn, task(2, path));
    REQUIRE(!bad);
    CHECK(is(bad.error(), errc::corrupt_data));
    CHECK_MESSAGE(describe(bad.error()).find("do not match their recorded hash") != std::string::npos,
                  describe(bad.error()));
    CHECK(describe(bad.error()).find(path) != std::string::npos);
    write_file(input);
    // A file that is gone: this task's bytes are read by the node and go through shared
    // memory; blob files stay on for the next task.
    auto r3 = c.run(fn, task(3, dir.path() + "/00000000000000b2.blob"));
    REQUIRE_MESSAGE(r3, text(r3));
    CHECK(r3->output == r->output);
    CHECK(reads == 1);
    auto r4 = c.run(fn, task(4, path));
    REQUIRE_MESSAGE(r4, text(r4));
    CHECK(reads == 1);
    st = c.stats(compute);
    CHECK(st["blob_file_tasks"] == 2);
    CHECK(st["shm_tasks"] == 1);
    // Without shared memory (another host) the node reads the bytes and sends pieces.
    auto tcp = c.function(proc.port(), 50, 60s, /*shared_memory=*/false);
    auto r5 = c.run(tcp, task(5, path));
    REQUIRE_MESSAGE(r5, text(r5));
    CHECK(r5->output == r->output);
    CHECK(reads == 2);
    CHECK(c.stats(compute)["blob_file_tasks"] == 2);
  }

  TEST_CASE("read_blob_file takes only blob segment files of this user, inside their bounds") {
    test::temp_dir dir;
    auto base = std::filesystem::absolute(dir.path()).string();
    auto file = base + "/0123456789abcdef.blob";
    {
      std::ofstream f(file, std::ios::binary);
      f << "0123456789";
    }
    std::string ten = "0123456789";
    const auto h = XXH3_64bits(ten.data() + 2, 5);
    auto ok = read_blob_file({file, 2, 5, h});
    REQUIRE_MESSAGE(ok, describe(ok.error()));
    CHECK(std::string(ok->begin(), ok->end()) == "23456");
    auto refused = [](const blob_file_ref& ref, errc code, const std::string& needle) {
      auto r = read_blob_file(ref);
      REQUIRE(!r);
      CHECK(is(r.error(), code));
      CHECK_MESSAGE(describe(r.error()).find(needle) != std::string::npos, describe(r.error()));
    };
    for (auto bad : {std::string{"0123456789abcdef.blob"}, base + "/../x/0123456789abcdef.blob",
                     base + "/./0123456789abcdef.blob", base + "//0123456789abcdef.blob",
                     base + "/0123456789ABCDEF.blob", base + "/0123456789abcde.blob",
                     base + "/passwd", std::string{"/etc/passwd"}})
      refused({bad, 0, 1, 0}, errc::protocol_error, "not an absolute path to a blob segment");
    refused({file, 8, 5, h}, errc::protocol_error, "lie outside");
    refused({file, 2, 5, h + 1}, errc::corrupt_data, "do not match their recorded hash");
    refused({base + "/00000000000000ff.blob", 0, 1, 0}, errc::not_found, "cannot open");
    // A symbolic link with a segment's name is not followed; a folder is not a file.
    auto link = base + "/1111111111111111.blob";
    std::filesystem::create_symlink(file, link);
    refused({link, 2, 5, h}, errc::unsupported, "cannot open");
    auto folder = base + "/2222222222222222.blob";
    std::filesystem::create_directory(folder);
    refused({folder, 0, 1, 0}, errc::unsupported, "not a regular file");
  }

  TEST_CASE("read_blob_file reads into a used buffer, larger or smaller, exactly the bytes, "
            "and checks the hash over chunks") {
    test::temp_dir dir;
    auto file = std::filesystem::absolute(dir.path()).string() + "/00000000000000b2.blob";
    // Over 256 KiB: several chunks of the streamed hash, the last one partial.
    auto data = random_bytes((size_t{600} << 10) + 77, 52);
    {
      std::ofstream f(file, std::ios::binary);
      f << "head";
      f.write(data.data(), std::streamsize(data.size()));
    }
    const auto h = XXH3_64bits(data.data(), data.size());
    auto whole = read_blob_file({file, 4, data.size(), h});
    REQUIRE_MESSAGE(whole, describe(whole.error()));
    CHECK(*whole == data);
    // A buffer that held other, larger bytes: reused, and only the blob's bytes come back.
    auto larger = std::vector<char>(data.size() + 4096, 'x');
    const auto* mem = larger.data();
    auto again = read_blob_file({file, 4, data.size(), h}, std::move(larger));
    REQUIRE_MESSAGE(again, describe(again.error()));
    CHECK(*again == data);
    CHECK(again->data() == mem); // no new allocation
    // A smaller used buffer grows; a part of the blob into a buffer of the whole.
    auto part = read_blob_file({file, 4 + 1000, 5000, XXH3_64bits(data.data() + 1000, 5000)},
                               std::vector<char>(100, 'y'));
    REQUIRE_MESSAGE(part, describe(part.error()));
    CHECK(*part == std::vector<char>(data.begin() + 1000, data.begin() + 6000));
    // A byte changed in the third chunk: the streamed hash finds it.
    {
      std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
      f.seekp(4 + (size_t{512} << 10) + 3);
      f.put(static_cast<char>(data[(size_t{512} << 10) + 3] ^ 0x20));
    }
    auto bad = read_blob_file({file, 4, data.size(), h}, std::move(*again));
    REQUIRE(!bad);
    CHECK(is(bad.error(), errc::corrupt_data));
  }

  TEST_CASE("blob_file_reader copies a range the first time and gives it as a window into "
            "its file's mapping after, checked, with read_blob_file's refusals") {
    test::temp_dir dir;
    auto base = std::filesystem::absolute(dir.path()).string();
    auto file = base + "/0123456789abcdef.blob";
    auto data = random_bytes((size_t{300} << 10) + 13, 61);
    auto write = [](const std::string& path, const std::string& head,
                    const std::vector<char>& bytes) {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f << head;
      f.write(bytes.data(), std::streamsize(bytes.size()));
    };
    write(file, "head", data);
    const auto h = XXH3_64bits(data.data(), data.size());
    blob_file_reader reader;
    std::vector<char> spare;
    // The first read copies into the spare buffer given (it takes it).
    spare.resize(data.size() + 100);
    const auto* spare_mem = spare.data();
    auto first = reader.read({file, 4, data.size(), h}, spare);
    REQUIRE_MESSAGE(first, describe(first.error()));
    CHECK(!first->external());
    CHECK(first->data() == spare_mem);
    CHECK(std::vector<char>(first->begin(), first->end()) == data);
    // The same range again: read in place from the file kept open and mapped, no copy; the
    // spare buffer is left alone.
    spare.resize(10);
    auto second = reader.read({file, 4, data.size(), h}, spare);
    REQUIRE_MESSAGE(second, describe(second.error()));
    CHECK(second->external());
    CHECK(second->intact());
    CHECK(spare.size() == 10);
    CHECK(std::vector<char>(second->begin(), second->end()) == data);
    auto third = reader.read({file, 4, data.size(), h}, spare);
    REQUIRE_MESSAGE(third, describe(third.error()));
    CHECK(third->data() == second->data());
    CHECK(reader.files() == 1);
    CHECK(reader.in_place() == 2);
    // A part of it, checked against its own hash.
    auto part = reader.read({file, 4 + 1000, 5000, XXH3_64bits(data.data() + 1000, 5000)}, spare);
    REQUIRE_MESSAGE(part, describe(part.error()));
    CHECK(std::vector<char>(part->begin(), part->end())
          == std::vector<char>(data.begin() + 1000, data.begin() + 6000));
    auto refused = [&](const blob_file_ref& ref, errc code, const std::string& needle) {
      std::vector<char> none;
      auto r = reader.read(ref, none);
      REQUIRE(!r);
      CHECK(is(r.error(), code));
      CHECK_MESSAGE(describe(r.error()).find(needle) != std::string::npos, describe(r.error()));
    };
    for (auto bad : {std::string{"0123456789abcdef.blob"}, base + "/../x/0123456789abcdef.blob",
                     base + "/./0123456789abcdef.blob", base + "//0123456789abcdef.blob",
                     base + "/0123456789ABCDEF.blob", base + "/passwd"})
      refused({bad, 0, 1, 0}, errc::protocol_error, "not an absolute path to a blob segment");
    refused({file, 4 + data.size(), 5, h}, errc::protocol_error, "lie outside");
    refused({file, 4, data.size(), h + 1}, errc::corrupt_data, "do not match their recorded hash");
    refused({file, 4 + 1000, 5000, h}, errc::corrupt_data, "do not match their recorded hash");
    refused({base + "/00000000000000ff.blob", 0, 1, 0}, errc::not_found, "cannot open");
    auto link = base + "/1111111111111111.blob";
    std::filesystem::create_symlink(file, link);
    refused({link, 4, data.size(), h}, errc::unsupported, "cannot open");
    auto folder = base + "/2222222222222222.blob";
    std::filesystem::create_directory(folder);
    refused({folder, 0, 1, 0}, errc::unsupported, "not a regular file");
    // A blob appended after the file was mapped (an active segment grows) reads as well.
    auto more = random_bytes(70000, 62);
    {
      std::ofstream f(file, std::ios::binary | std::ios::app);
      f.write(more.data(), std::streamsize(more.size()));
    }
    const blob_file_ref more_ref{file, 4 + data.size(), more.size(),
                                 XXH3_64bits(more.data(), more.size())};
    for (int k = 0; k < 2; ++k) { // a copy, then a window
      std::vector<char> none;
      auto appended = reader.read(more_ref, none);
      REQUIRE_MESSAGE(appended, describe(appended.error()));
      CHECK(appended->external() == (k == 1));
      CHECK(std::vector<char>(appended->begin(), appended->end()) == more);
    }
    // Windows handed out stay valid after the reader lets go of the file.
    CHECK(reader.release_idle(0s) == 0);
    CHECK(std::vector<char>(second->begin(), second->end()) == data);
  }

  TEST_CASE("blob_file_reader opens a name again when another file took it, lets go of "
            "unlinked files and of the least recently read beyond its bound") {
    test::temp_dir dir;
    auto base = std::filesystem::absolute(dir.path()).string();
    auto name = [&](int k) { return base + "/000000000000000" + std::to_string(k) + ".blob"; };
    auto write = [](const std::string& path, const std::vector<char>& bytes) {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f.write(bytes.data(), std::streamsize(bytes.size()));
    };
    auto a = random_bytes(100000, 63);
    auto b = random_bytes(100000, 64);
    write(name(1), a);
    blob_file_reader reader{2};
    std::vector<char> none;
    auto read = [&](const std::string& path, const std::vector<char>& bytes) {
      return reader.read({path, 0, bytes.size(), XXH3_64bits(bytes.data(), bytes.size())}, none);
    };
    REQUIRE(read(name(1), a));
    auto ra = read(name(1), a); // a window into the file's mapping
    REQUIRE_MESSAGE(ra, describe(ra.error()));
    CHECK(ra->external());
    // The name is unlinked and taken by a new file with other bytes: they are read from it.
    std::filesystem::remove(name(1));
    write(name(1), b);
    auto rb = read(name(1), b);
    REQUIRE_MESSAGE(rb, describe(rb.error()));
    CHECK(std::vector<char>(rb->begin(), rb->end()) == b);
    CHECK(std::vector<char>(ra->begin(), ra->end()) == a); // the old window still reads
    // A file unlinked while kept open serves the read (its bytes match) and is let go.
    std::filesystem::remove(name(1));
    auto again = read(name(1), b);
    REQUIRE_MESSAGE(again, describe(again.error()));
    CHECK(std::vector<char>(again->begin(), again->end()) == b);
    CHECK(reader.files() == 0);
    // At most 2 files open: the least recently read goes.
    for (int k = 2; k <= 4; ++k) {
      write(name(k), a);
      auto r = read(name(k), a);
      REQUIRE_MESSAGE(r, describe(r.error()));
      CHECK(reader.files() == std::min(k - 1, 2));
    }
  }

  TEST_CASE("a blob file cut short while a window into it is read gives zeros there and marks "
            "the window not intact, instead of ending the process") {
    test::temp_dir dir;
    auto path = std::filesystem::absolute(dir.path()).string() + "/00000000000000c3.blob";
    auto data = random_bytes(size_t{200} << 10, 65);
    {
      std::ofstream f(path, std::ios::binary);
      f.write(data.data(), std::streamsize(data.size()));
    }
    blob_file_reader reader;
    std::vector<char> none;
    const blob_file_ref ref{path, 0, data.size(), XXH3_64bits(data.data(), data.size())};
    REQUIRE(reader.read(ref, none)); // a copy
    auto r = reader.read(ref, none);  // a window
    REQUIRE_MESSAGE(r, describe(r.error()));
    REQUIRE(r->external());
    CHECK(r->intact());
    std::filesystem::resize_file(path, 4096);
    // Read every byte again (volatile: the reads happen, past the file's new end too).
    const volatile char* bytes = r->data();
    uint64_t sum = 0;
    for (size_t k = 0; k < r->size(); ++k)
      sum += static_cast<unsigned char>(bytes[k]);
    CHECK(sum > 0); // the first page is still the file's
    CHECK(!r->intact());
    CHECK(bytes[r->size() - 1] == 0);
    // The next read of that range finds the file short and says so.
    auto next = reader.read(ref, none);
    REQUIRE(!next);
    CHECK(is(next.error(), errc::protocol_error));
  }

  TEST_CASE("shm_reader::read into a used buffer gives exactly the region's bytes") {
    auto arena = shm_arena::create(size_t{1} << 20);
    REQUIRE(arena);
    auto data = random_bytes(100000, 53);
    auto ref = (*arena)->put(data.data(), data.size());
    REQUIRE(ref);
    shm_reader reader;
    auto used = std::vector<char>(200000, 'z');
    const auto* mem = used.data();
    auto got = reader.read(*ref, std::move(used));
    REQUIRE_MESSAGE(got, describe(got.error()));
    CHECK(*got == data);
    CHECK(got->data() == mem);
    auto fresh = reader.read(*ref, std::vector<char>(10, 'z'));
    REQUIRE_MESSAGE(fresh, describe(fresh.error()));
    CHECK(*fresh == data);
  }

  TEST_CASE("a compute process that cannot read the sender's segment (here one that predates "
            "shared-memory pieces): the function actor falls back to pieces over TCP") {
    test::compute_child proc;
    client c;
    auto compute = c.connect(proc.port());
    // A stand-in for an older compute process: it passes pieces on and knows nothing else.
    auto old = c.sys.spawn([compute](caf::event_based_actor* self) -> caf::behavior {
      return {[=](piece_atom a, std::vector<char>& bytes) {
        return self->delegate(compute, a, std::move(bytes));
      }};
    });
    c.spawned.push_back(old);
    auto port = c.sys.middleman().publish(old, 0, "127.0.0.1");
    REQUIRE_MESSAGE(port, c.sys.render(port.error()));
    auto fn = c.function(*port);
    for (uint64_t id = 1; id <= 3; ++id) {
      auto input = random_bytes(2 * max_piece_payload + id, static_cast<uint32_t>(30 + id));
      auto r = c.run(fn, whole_task(id, piece_kind::infer, "checksum", input));
      REQUIRE_MESSAGE(r, text(r));
      CHECK(r->output == checksum_output({input}));
    }
    auto st = c.stats(compute);
    CHECK(st["shm_tasks"] == 0);
    CHECK(st["completed"] == 3);
  }

  TEST_CASE("malformed shared-memory tasks get clear errors and the compute process keeps "
            "serving") {
    test::compute_child proc;
    client c;
    auto compute = c.connect(proc.port());
    auto send = [&](std::vector<char> header, shm_ref ref) {
      caf::expected<task_result> out = make_error(errc::timeout, "no reply");
      c.self->request(compute, 20s, shm_piece_atom::value, std::move(header), std::move(ref))
        .receive([&](task_result& r) { out = std::move(r); },
                 [&](caf::error& e) { out = std::move(e); });
      return out;
    };
    auto arena = shm_arena::create(size_t{1} << 20);
    REQUIRE(arena);
    auto data = random_bytes(100000, 41);
    auto ref = (*arena)->put(data.data(), data.size());
    REQUIRE(ref);
    auto header = [](uint64_t task, uint32_t count, size_t payload) {
      std::vector<char> p(payload, 'x');
      return encode_piece(task, piece_kind::infer, "checksum", 0, 0, count, p.data(), p.size());
    };
    auto two = send(header(1, 2, 0), *ref);
    REQUIRE(!two);
    CHECK(is(two.error(), errc::protocol_error));
    CHECK(describe(two.error()).find("piece 0 of 1 without payload") != std::string::npos);
    auto with_payload = send(header(2, 1, 10), *ref);
    REQUIRE(!with_payload);
    CHECK(is(with_payload.error(), errc::protocol_error));
    auto bad = *ref;
    bad.segment = "/etc-passwd";
    auto named = send(header(3, 1, 0), bad);
    REQUIRE(!named);
    CHECK(is(named.error(), errc::protocol_error));
    auto gone = *ref;
    gone.segment = "/comb-pieces-1-00000000000000ff";
    auto missing = send(header(4, 1, 0), gone);
    REQUIRE(!missing);
    CHECK(is(missing.error(), errc::unsupported));
    auto stale = *ref;
    stale.ticket ^= 1;
    auto reused = send(header(5, 1, 0), stale);
    REQUIRE(!reused);
    CHECK(is(reused.error(), errc::protocol_error));
    auto garbage = send(std::vector<char>(24, 'g'), *ref);
    REQUIRE(!garbage);
    CHECK(is(garbage.error(), errc::corrupt_data));
    auto ok = send(header(6, 1, 0), *ref);
    REQUIRE_MESSAGE(ok, text(ok));
    CHECK(ok->output == checksum_output({data}));
    CHECK(c.stats(compute)["rejected"] == 6);
  }

  TEST_CASE("a shared-memory task is read in place: a region its sender reuses before the task "
            "runs fails the task (corrupt_data), and its batch runs") {
    // Batches of 2 with no deadline to speak of: the first task waits for a second one.
    test::compute_child proc{{"--batch", "checksum=2:600000"}};
    client c;
    auto compute = c.connect(proc.port());
    auto arena = shm_arena::create(size_t{1} << 20);
    REQUIRE(arena);
    auto data = random_bytes(100000, 71);
    auto ref = (*arena)->put(data.data(), data.size());
    REQUIRE(ref);
    caf::scoped_actor sender{c.sys};
    auto header = encode_piece(1, piece_kind::infer, "checksum", 0, 0, 1, nullptr, 0);
    auto first = sender->request(compute, 60s, shm_piece_atom::value, header, *ref);
    // Answered after the shm task was taken in (one sender, one connection: in order).
    sender->request(compute, 20s, ping_atom::value)
      .receive([](uint64_t) {}, [&](caf::error& e) { FAIL("ping: " << c.sys.render(e)); });
    // The sender gives the region up and another task's bytes take it.
    (*arena)->release(*ref);
    auto other = random_bytes(100000, 72);
    auto ref2 = (*arena)->put(other.data(), other.size());
    REQUIRE(ref2);
    REQUIRE(ref2->offset == ref->offset);
    // The second task completes the batch.
    auto second = c.send_raw(compute, encode_piece(2, piece_kind::infer, "checksum", 0, 0, 1,
                                                   other.data(), other.size()));
    REQUIRE_MESSAGE(second, text(second));
    CHECK(second->output == checksum_output({other}));
    caf::expected<task_result> out = make_error(errc::timeout, "no reply");
    first.receive([&](task_result& r) { out = std::move(r); },
                  [&](caf::error& e) { out = std::move(e); });
    REQUIRE(!out);
    CHECK(is(out.error(), errc::corrupt_data));
    CHECK(text(out).find("changed while the task read them") != std::string::npos);
    // A region left alone is read in place and answered.
    auto third = sender->request(compute, 20s, shm_piece_atom::value,
                                 encode_piece(3, piece_kind::infer, "checksum", 0, 0, 1, nullptr, 0),
                                 *ref2);
    auto fourth = c.send_raw(compute, encode_piece(4, piece_kind::infer, "checksum", 0, 0, 1,
                                                   data.data(), data.size()));
    REQUIRE_MESSAGE(fourth, text(fourth));
    caf::expected<task_result> ok = make_error(errc::timeout, "no reply");
    third.receive([&](task_result& r) { ok = std::move(r); },
                  [&](caf::error& e) { ok = std::move(e); });
    REQUIRE_MESSAGE(ok, text(ok));
    CHECK(ok->output == checksum_output({other}));
    CHECK(c.stats(compute)["shm_tasks"] == 2);
  }

  TEST_CASE("each malformed piece gets a clear error and the compute process keeps serving") {
    test::compute_child proc{{"--task-timeout-ms", "300"}};
    client c;
    auto compute = c.connect(proc.port());
    REQUIRE(c.send_raw(compute, raw_piece(1, 0, 3, 100)));

    auto dup = c.send_raw(compute, raw_piece(1, 0, 3, 100));
    REQUIRE(!dup);
    CHECK(is(dup.error(), errc::protocol_error));
    CHECK(text(dup).find("duplicate piece") != std::string::npos);

    auto range = c.send_raw(compute, raw_piece(1, 3, 3, 100));
    REQUIRE(!range);
    CHECK(is(range.error(), errc::protocol_error));
    CHECK(text(range).find("pieceNo 3 is not below pieceCount 3") != std::string::npos);

    auto count = c.send_raw(compute, raw_piece(1, 1, 5, 100));
    REQUIRE(!count);
    CHECK(is(count.error(), errc::protocol_error));
    CHECK(text(count).find("disagrees with 3") != std::string::npos);

    auto big = c.send_raw(compute, raw_piece(1, 1, 3, max_piece_payload + 1));
    REQUIRE(!big);
    CHECK(is(big.error(), errc::too_large));

    auto unknown = c.send_raw(compute, raw_piece(2, 0, 1, 100, "no-such-model"));
    REQUIRE(!unknown);
    CHECK(is(unknown.error(), errc::model_not_loaded));
    CHECK(text(unknown).find("unknown model 'no-such-model'") != std::string::npos);

    auto junk = c.send_raw(compute, std::vector<char>{'n', 'o', 'p', 'e'});
    REQUIRE(!junk);
    CHECK(is(junk.error(), errc::corrupt_data));

    // Task 1 never gets its last pieces: it expires and its memory is freed.
    nlohmann::json st;
    test::wait_until(
      [&] {
        st = c.stats(compute);
        return st["expired"] == 1;
      },
      30s, "task 1 to expire in the compute process");
    CHECK(st["expired"] == 1);
    CHECK(st["incomplete_tasks"] == 0);
    CHECK(st["held_bytes"] == 0);
    CHECK(st["reserved_bytes"] == 0);
    auto late = c.send_raw(compute, raw_piece(1, 1, 3, 100));
    REQUIRE(!late);
    CHECK(is(late.error(), errc::timeout));
    CHECK(text(late).find("expired") != std::string::npos);

    // Still serving: a good task completes.
    auto fn = c.function(proc.port());
    auto data = random_bytes(3 * max_piece_payload + 17, 3);
    auto ok = c.run(fn, whole_task(3, piece_kind::infer, "checksum", data));
    REQUIRE_MESSAGE(ok, text(ok));
    CHECK(ok->complete);
    CHECK(ok->output == checksum_output({data}));
  }

  TEST_CASE("the memory bound pushes back and function actors get through by retrying") {
    test::compute_child proc{{"--memory-limit-mib", "4"}};
    client c;
    auto compute = c.connect(proc.port());
    REQUIRE(c.send_raw(compute, raw_piece(1, 0, 4, 10))); // reserves 4 MiB: the whole bound
    auto full = c.send_raw(compute, raw_piece(2, 0, 2, 10));
    REQUIRE(!full);
    CHECK(is(full.error(), errc::overloaded));
    auto never = c.send_raw(compute, raw_piece(3, 0, 5, 10));
    REQUIRE(!never);
    CHECK(is(never.error(), errc::too_large));
    for (uint32_t no = 1; no < 4; ++no)
      REQUIRE(c.send_raw(compute, raw_piece(1, no, 4, 10)));
    // 6 function actors, 3-piece tasks, at most one task admitted at a time.
    std::vector<caf::actor> fns;
    std::vector<handle_t> handles;
    std::vector<std::vector<char>> inputs;
    for (uint32_t i = 0; i < 6; ++i) {
      // Over TCP: a task through shared memory is whole at once and reserves nothing.
      fns.push_back(c.function(proc.port(), 50, 60s, /*shared_memory=*/false));
      inputs.push_back(random_bytes(2 * max_piece_payload + 1000 * i, 100 + i));
      handles.push_back(
        c.self->request(fns.back(), 60s, run_atom::value,
                        whole_task(100 + i, piece_kind::infer, "checksum", inputs.back())));
    }
    for (size_t i = 0; i < handles.size(); ++i)
      handles[i].receive(
        [&](task_result& r) {
          CHECK(r.complete);
          CHECK(r.output == checksum_output({inputs[i]}));
        },
        [&](caf::error& e) { FAIL("task failed: " << describe(e)); });
    auto st = c.stats(compute);
    CHECK(st["rejected"].get<int>() >= 2);
    CHECK(st["reserved_bytes"] == 0);
  }

  TEST_CASE("batching waits for a batch size, and inference runs before training") {
    test::compute_child proc{{"--batch", "checksum=3:1500", "--priority", "infer,train"}};
    client c;
    auto compute = c.connect(proc.port());
    std::vector<handle_t> handles;
    auto send = [&](uint64_t id, piece_kind kind) {
      std::vector<char> payload(100, static_cast<char>(id));
      handles.push_back(c.self->request(compute, 20s, piece_atom::value,
                                        encode_piece(id, kind, "checksum", 0, 0, 1, payload.data(),
                                                     payload.size())));
    };
    // Two training tasks first, then two inference tasks: none reaches the batch size of 3,
    // so the deadline flushes them, inference first.
    send(1, piece_kind::train);
    send(2, piece_kind::train);
    send(3, piece_kind::infer);
    send(4, piece_kind::infer);
    for (auto& h : handles)
      h.receive([&](task_result& r) { CHECK(r.batch_size == 2); },
                [&](caf::error& e) { FAIL(describe(e)); });
    auto order = c.stats(compute)["run_order"];
    REQUIRE(order.size() == 4);
    CHECK(order[0] == "infer:3");
    CHECK(order[1] == "infer:4");
    CHECK(order[2] == "train:1");
    CHECK(order[3] == "train:2");
    // Three tasks reach the batch size and run at once, as one batch.
    handles.clear();
    send(5, piece_kind::infer);
    send(6, piece_kind::infer);
    send(7, piece_kind::infer);
    for (auto& h : handles)
      h.receive([&](task_result& r) { CHECK(r.batch_size == 3); },
                [&](caf::error& e) { FAIL(describe(e)); });
  }

  TEST_CASE("models load as pieces, switching versions fails nothing in flight, results name "
            "their version") {
    test::compute_child proc{{"--unload-grace-ms", "0"}};
    client c;
    auto compute = c.connect(proc.port());
    auto fn = c.function(proc.port());
    auto v1 = random_bytes(2 * max_piece_payload + 5, 11);
    auto v2 = random_bytes(1000, 12);
    auto l1 = c.run(fn, whole_task(10, piece_kind::load_model, "mlp", v1, 1));
    REQUIRE_MESSAGE(l1, text(l1));
    CHECK(l1->model_digest == model_digest(v1.data(), v1.size()));
    auto input = random_bytes(5000, 13);
    auto r1 = c.run(fn, whole_task(11, piece_kind::infer, "mlp", input));
    REQUIRE_MESSAGE(r1, text(r1));
    CHECK(r1->model_version == 1);
    CHECK(r1->model_digest == l1->model_digest);
    // A reload (load without activating) does not switch: v1 stays active until activated.
    auto l2 = c.run(fn, whole_task(12, piece_kind::reload_model, "mlp", v2, 2));
    REQUIRE_MESSAGE(l2, text(l2));
    auto r1b = c.run(fn, whole_task(13, piece_kind::infer, "mlp", input));
    REQUIRE(r1b);
    CHECK(r1b->model_version == 1);
    // A task in flight on v1 while v2 is activated finishes on v1.
    std::vector<char> half(100, 'h');
    auto first = c.send_raw(compute, encode_piece(14, piece_kind::infer, "mlp", 0, 0, 2,
                                                  half.data(), half.size()));
    REQUIRE(first);
    CHECK(!first->complete);
    uint32_t previous = 0;
    c.self->request(compute, 10s, activate_atom::value, std::string{"mlp"}, uint32_t{2})
      .receive([&](uint32_t p) { previous = p; }, [&](caf::error& e) { FAIL(describe(e)); });
    CHECK(previous == 1);
    auto second = c.send_raw(compute, encode_piece(14, piece_kind::infer, "mlp", 0, 1, 2,
                                                   half.data(), half.size()));
    REQUIRE_MESSAGE(second, text(second));
    CHECK(second->complete);
    CHECK(second->model_version == 1);
    auto r2 = c.run(fn, whole_task(15, piece_kind::infer, "mlp", input));
    REQUIRE(r2);
    CHECK(r2->model_version == 2);
    CHECK(r2->model_digest == model_digest(v2.data(), v2.size()));
    CHECK(r2->output != r1->output);
    // v1, superseded, was unloaded once task 14 was done: a task pinned to it answers
    // model_not_loaded until v1 is loaded again, as does a version never loaded.
    auto gone = c.run(fn, whole_task(16, piece_kind::infer, "mlp", input, 1));
    REQUIRE(!gone);
    CHECK(is(gone.error(), errc::model_not_loaded));
    REQUIRE(c.run(fn, whole_task(18, piece_kind::reload_model, "mlp", v1, 1)));
    auto pinned = c.run(fn, whole_task(19, piece_kind::infer, "mlp", input, 1));
    REQUIRE_MESSAGE(pinned, text(pinned));
    CHECK(pinned->output == r1->output);
    auto missing = c.run(fn, whole_task(17, piece_kind::infer, "mlp", input, 3));
    REQUIRE(!missing);
    CHECK(is(missing.error(), errc::model_not_loaded));
    bool activate_failed = false;
    c.self->request(compute, 10s, activate_atom::value, std::string{"mlp"}, uint32_t{9})
      .receive([&](uint32_t) {}, [&](caf::error& e) { activate_failed = is(e, errc::bad_model); });
    CHECK(activate_failed);
  }

  TEST_CASE("the compute process killed and restarted mid-run: every task completes once") {
    test::compute_child proc;
    client c;
    std::vector<caf::actor> fns;
    for (int i = 0; i < 4; ++i)
      fns.push_back(c.function(proc.port()));
    constexpr int n = 24;
    std::vector<std::vector<char>> inputs;
    std::vector<handle_t> handles;
    for (int i = 0; i < n; ++i) {
      inputs.push_back(random_bytes(3 * max_piece_payload - 7 * i, 200 + i));
      handles.push_back(
        c.self->request(fns[i % 4], 120s, run_atom::value,
                        whole_task(200 + i, piece_kind::infer, "checksum", inputs.back())));
    }
    // Let some of them complete, then kill the process hard and bring it back on its port.
    handles[0].receive([&](task_result& r) { CHECK(r.output == checksum_output({inputs[0]})); },
                       [&](caf::error& e) { FAIL(describe(e)); });
    proc.kill(); // returns once the process is gone, its port closed
    CHECK_FALSE(test::port_accepts(proc.port()));
    proc.start();
    for (int i = 1; i < n; ++i)
      handles[i].receive(
        [&](task_result& r) {
          CHECK(r.complete);
          CHECK(r.output == checksum_output({inputs[i]}));
        },
        [&](caf::error& e) { FAIL("task " << i << ": " << describe(e)); });
  }

  TEST_CASE("bad flags and a busy port give clear errors from comb compute") {
    test::temp_dir dir;
    auto run = [&](std::vector<std::string> args) {
      static int n = 0;
      auto log = dir.path() + "/cli-" + std::to_string(++n) + ".log";
      args.insert(args.begin(), {test::comb_binary(), "compute"});
      std::fflush(stdout);
      test::child_process p{args, log};
      int status = p.wait();
      std::ifstream in{log};
      std::stringstream ss;
      ss << in.rdbuf();
      return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : 128, ss.str());
    };
    auto batch = run({"--batch", "checksum=x:5", "--seconds", "1"});
    CHECK(batch.first == 2);
    CHECK(batch.second.find("batch policy 'checksum=x:5'") != std::string::npos);
    auto prio = run({"--priority", "infer,cook", "--seconds", "1"});
    CHECK(prio.first == 2);
    CHECK(prio.second.find("unknown task kind 'cook'") != std::string::npos);
    auto pin = run({"--kernel-pin", "sometimes", "--seconds", "1"});
    CHECK(pin.first != 0);
    CHECK(pin.second.find("--kernel-pin") != std::string::npos);
    // --kernel-pin overrides COMB_KERNEL_PIN for the pool; the listening line names the
    // placement in force.
    auto pinned = run({"--kernel-pin", "1", "--seconds", "1"});
    CHECK(pinned.first == 0);
    CHECK(pinned.second.find("workers pinned off the caller's CPU") != std::string::npos);
    auto free = run({"--kernel-pin", "0", "--seconds", "1"});
    CHECK(free.first == 0);
    CHECK(free.second.find("workers left to the scheduler") != std::string::npos);
    // --cpus: the process runs on those CPUs and sizes the kernels' pool to them; a bad list
    // or an absent CPU is named.
    auto one_cpu = run({"--cpus", "0", "--seconds", "1"});
    CHECK(one_cpu.first == 0);
    CHECK(one_cpu.second.find("on CPUs 0)") != std::string::npos);
    CHECK(one_cpu.second.find("kernel pool 1 threads") != std::string::npos);
    auto bad_cpus = run({"--cpus", "0-x", "--seconds", "1"});
    CHECK(bad_cpus.first == 2);
    CHECK(bad_cpus.second.find("CPU list '0-x'") != std::string::npos);
    auto absent_cpu = run({"--cpus", "1023", "--seconds", "1"});
    CHECK(absent_cpu.first == 2);
    CHECK(absent_cpu.second.find("cannot run on CPUs 1023") != std::string::npos);
    auto cuda = run({"--backend", "cuda", "--seconds", "1"});
    if (kernels::find_backend("cuda")) {
      CHECK(cuda.first == 0);
      CHECK(cuda.second.find("(backend cuda") != std::string::npos);
    } else {
      CHECK(cuda.first == 2);
      CHECK(cuda.second.find("unavailable: --backend cuda: CUDA") != std::string::npos);
      auto autob = run({"--backend", "auto", "--seconds", "1"});
      CHECK(autob.first == 0);
      CHECK(autob.second.find(": running on the CPU") != std::string::npos);
    }
    test::compute_child busy;
    auto port = run({"--listen", "127.0.0.1:" + std::to_string(busy.port()), "--seconds", "1"});
    CHECK(port.first == 3);
    CHECK(port.second.find("cannot listen on 127.0.0.1:" + std::to_string(busy.port()))
          != std::string::npos);
  }

  TEST_CASE("retries are bounded when the compute process stays away") {
    test::compute_child proc;
    auto port = proc.port();
    proc.kill();
    client c;
    auto fn = c.function(port, /*max_attempts=*/3);
    auto r = c.run(fn, whole_task(1, piece_kind::infer, "checksum", random_bytes(10, 1)), 30s);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::unavailable));
    CHECK(text(r).find("after 3 attempts") != std::string::npos);
  }

  TEST_CASE("a compute process that stops answering: the task is sent again, then fails with a "
            "clear error; once it answers again, tasks complete") {
    test::compute_child proc;
    client c;
    auto input = random_bytes(2 * max_piece_payload + 5, 7);
    auto fn = c.function(proc.port(), /*max_attempts=*/2, /*request_timeout=*/300ms);
    auto first = c.run(fn, whole_task(1, piece_kind::infer, "checksum", input));
    REQUIRE_MESSAGE(first, text(first));
    proc.stop(); // connected, but silent
    auto t0 = std::chrono::steady_clock::now();
    auto stuck = c.run(fn, whole_task(2, piece_kind::infer, "checksum", input), 30s);
    proc.signal(SIGCONT);
    REQUIRE(!stuck);
    CHECK(is(stuck.error(), errc::unavailable));
    CHECK_MESSAGE(text(stuck).find("after 2 attempts") != std::string::npos, text(stuck));
    CHECK_MESSAGE(text(stuck).find("no reply from 127.0.0.1:" + std::to_string(proc.port())
                                   + " for 300 ms")
                    != std::string::npos,
                  text(stuck));
    CHECK(std::chrono::steady_clock::now() - t0 < 20s); // the sweep, not a CAF timeout
    auto again = c.run(fn, whole_task(3, piece_kind::infer, "checksum", input));
    REQUIRE_MESSAGE(again, text(again));
    CHECK(again->output == checksum_output({input}));
  }

  TEST_CASE("a task that runs longer than request_timeout is not sent again: its result "
            "arrives") {
    // The compute process holds a lone checksum task for its batch deadline (1.5 s), five
    // times the function actor's request_timeout: the task is running, not lost. Before
    // result_timeout, the sweep sent it again after 300 ms and its result was dropped.
    test::compute_child proc{{"--batch", "checksum=4:1500"}};
    client c;
    auto input = random_bytes(2 * max_piece_payload + 5, 9);
    auto fn = c.function(proc.port(), /*max_attempts=*/2, /*request_timeout=*/300ms);
    auto t0 = std::chrono::steady_clock::now();
    auto r = c.run(fn, whole_task(1, piece_kind::infer, "checksum", input), 30s);
    REQUIRE_MESSAGE(r, text(r));
    CHECK(r->output == checksum_output({input}));
    // A lower bound, so not a flaky timing: the batch deadline held the task, as meant.
    CHECK(std::chrono::steady_clock::now() - t0 >= 1400ms);
  }

  TEST_CASE("a compute process silent for longer than request_timeout, then back: the task "
            "completes, its pieces not sent again and refused as duplicates") {
    // A stalled read (load 12) made the function actor send a task's pieces again over the
    // same connection, behind the first ones: the compute process refused them ("duplicate
    // piece", protocol_error) and the task failed although its result was coming.
    test::compute_child proc;
    client c;
    auto log = std::make_shared<silence_log>();
    actors::function_config fc;
    fc.compute_port = proc.port();
    fc.max_attempts = 10;
    fc.request_timeout = 300ms;
    fc.retry_delay = 100ms;
    fc.shared_memory = false; // pieces over TCP, as to a compute process on another host
    fc.provenance = log;
    c.spawned.push_back(actors::spawn_function_actor(c.sys, fc));
    auto fn = c.spawned.back();
    auto input = random_bytes(6 * max_piece_payload + 5, 13);
    auto first = c.run(fn, whole_task(1, piece_kind::infer, "checksum", input)); // connects
    REQUIRE_MESSAGE(first, text(first));
    proc.stop(); // silent, its connection up
    auto pending = c.self->request(fn, 60s, run_atom::value,
                                   whole_task(2, piece_kind::infer, "checksum", input));
    REQUIRE(test::wait_until([&] { return log->silences.load() >= 2; }, 30s,
                             "the function actor to report the silence twice"));
    proc.signal(SIGCONT);
    caf::expected<task_result> r = make_error(errc::timeout, "no reply");
    pending.receive([&](task_result& x) { r = std::move(x); },
                    [&](caf::error& e) { r = std::move(e); });
    REQUIRE_MESSAGE(r, text(r));
    CHECK(r->output == checksum_output({input}));
  }

  TEST_CASE("in process: an MLP runs through pieces on the executor, one runner call per batch") {
    actors::compute_config cfg;
    cfg.batching["mlp"] = actors::batch_policy{3, std::chrono::milliseconds{1500}};
    local_compute lc{cfg};
    auto file = test::must(make_mlp_file({20, 8, 5}, 7));
    auto loaded = lc.send(1, piece_kind::load_model, "mlp", 1, as_bytes(file));
    REQUIRE_MESSAGE(loaded, text(loaded));
    CHECK(loaded->model_digest == model_digest(file.data(), file.size()));
    auto models = lc.models();
    REQUIRE(models.size() == 1);
    CHECK(models[0]["kind"] == "mlp");
    CHECK(models[0]["active"] == true);
    CHECK(models[0]["memory_bytes"].get<uint64_t>() > 0);

    // Three tasks of the batch size: one runner call; the wrong-shape one fails alone.
    auto good1 = mlp_input(2, 20, 1), bad = mlp_input(2, 19, 2), good2 = mlp_input(3, 20, 3);
    std::vector<handle_t> handles;
    for (auto [id, in] :
         {std::pair{uint64_t{10}, &good1}, {uint64_t{11}, &bad}, {uint64_t{12}, &good2}})
      handles.push_back(lc.request(id, piece_kind::infer, "mlp", 0, in->bytes, in->specs));
    std::vector<caf::expected<task_result>> got;
    for (auto& h : handles) {
      caf::expected<task_result> out = make_error(errc::timeout, "no reply");
      h.receive([&](task_result& r) { out = std::move(r); },
                [&](caf::error& e) { out = std::move(e); });
      got.push_back(std::move(out));
    }
    REQUIRE_MESSAGE(got[0], text(got[0]));
    REQUIRE_MESSAGE(got[2], text(got[2]));
    REQUIRE(!got[1]);
    CHECK(is(got[1].error(), errc::invalid_argument));
    CHECK(text(got[1]).find("task 11") != std::string::npos);
    CHECK(got[0]->batch_size == 3);
    CHECK(got[0]->model_version == 1);
    CHECK(got[0]->model_digest == loaded->model_digest);
    // The batch filled before its deadline: no task waited for it.
    CHECK(got[0]->queued_us < 1'000'000);

    // The outputs are the runner's, run directly on the same file.
    auto direct = test::must(find_runner("mlp")->load(file, kernels::cpu()));
    for (auto [r, in] : {std::pair{&got[0], &good1}, {&got[2], &good2}}) {
      task_tensors t{1, *in};
      auto want = direct->infer({&t});
      REQUIRE(want[0]);
      CHECK((*r)->outputs == want[0]->specs);
      CHECK((*r)->output == want[0]->bytes);
    }
    auto st = lc.c.stats(lc.compute);
    CHECK(st["backend"] == "cpu");
    REQUIRE(st["executors"].size() == 1);
    CHECK(st["executors"][0]["backend"] == "cpu");
    CHECK(st["executors"][0]["batches"] == 1);
    CHECK(st["executors"][0]["tasks"] == 3);
    CHECK(st["models"][0]["tasks_run"] == 2);

    // A task alone waits for the batch's deadline (1.5 s), and its result says so.
    {
      caf::expected<task_result> alone = make_error(errc::timeout, "no reply");
      lc.request(17, piece_kind::infer, "mlp", 0, good1.bytes, good1.specs)
        .receive([&](task_result& r) { alone = std::move(r); },
                 [&](caf::error& e) { alone = std::move(e); });
      REQUIRE_MESSAGE(alone, text(alone));
      CHECK(alone->batch_size == 1);
      CHECK(alone->queued_us >= 1'400'000);
      CHECK(alone->queued_us < 10'000'000);
    }

    // Opaque bytes for a model that needs tensors are refused, naming why.
    auto opaque = lc.send(13, piece_kind::infer, "mlp", 1, random_bytes(80, 1));
    REQUIRE(!opaque);
    CHECK(text(opaque).find("needs typed input tensors") != std::string::npos);

    // Training returns a new file of kind mlp and the losses, split over 2 pieces.
    auto train_in = mlp_input(32, 20, 4);
    std::vector<int32_t> labels(32);
    for (size_t i = 0; i < labels.size(); ++i)
      labels[i] = static_cast<int32_t>(i % 5);
    train_in.add("y", tensor_dtype::i32, {32}, labels.data());
    train_in.add_strings("config", {R"({"epochs":3,"batch":8,"lr":0.01,"seed":1})"});
    for (uint64_t id : {14, 15, 16}) // fill the batch of 3 of the train queue
      handles.push_back(
        lc.request(id, piece_kind::train, "mlp", 1, train_in.bytes, train_in.specs, 2));
    for (size_t k = 3; k < handles.size(); ++k)
      handles[k].receive(
        [&](task_result& r) {
          auto pack = tensor_pack{r.outputs, r.output};
          auto views = pack.views();
          REQUIRE_MESSAGE(views, test::why(views));
          REQUIRE(views->size() == 2);
          CHECK((*views)[0].spec->name == "model");
          CHECK((*views)[1].spec->describe() == "loss f32 [3]");
          auto info = check_model(std::string_view((*views)[0].data, (*views)[0].size));
          REQUIRE_MESSAGE(info, test::why(info));
          CHECK(info->kind == "mlp");
        },
        [&](caf::error& e) { FAIL(describe(e)); });
  }

  TEST_CASE("in process: MLP tasks read from blob files reuse the input buffers of finished "
            "batches, run on the bytes in place when read before, and give the runner's "
            "outputs") {
    local_compute lc{actors::compute_config{}};
    auto file = test::must(make_mlp_file({20, 8, 5}, 9));
    auto loaded = lc.send(1, piece_kind::load_model, "mlp", 1, as_bytes(file));
    REQUIRE_MESSAGE(loaded, text(loaded));
    auto direct = test::must(find_runner("mlp")->load(file, kernels::cpu()));
    test::temp_dir dir;
    auto base = std::filesystem::absolute(dir.path()).string();
    // 1,000 rows (80,000 bytes), 900 rows (a used buffer of more bytes), 1,000 again (grows
    // back within its memory), 1,100 (too large for it: a new buffer); the first file again
    // (read in place: its bytes were read before).
    std::vector<std::pair<int64_t, uint32_t>> inputs{{1000, 1}, {900, 2}, {1000, 3}, {1100, 4}, {1000, 1}};
    uint64_t id = 100;
    for (auto [rows, seed] : inputs) {
      auto in = mlp_input(rows, 20, seed);
      char name[32];
      std::snprintf(name, sizeof name, "/%016x.blob", seed);
      auto path = base + name;
      if (!std::filesystem::exists(path)) {
        std::ofstream f(path, std::ios::binary);
        f.write(in.bytes.data(), std::streamsize(in.bytes.size()));
      }
      auto header = encode_piece(++id, piece_kind::infer, "mlp", 0, 0, 1, nullptr, 0, in.specs);
      blob_file_ref ref{path, 0, in.bytes.size(), XXH3_64bits(in.bytes.data(), in.bytes.size())};
      caf::expected<task_result> got = make_error(errc::timeout, "no reply");
      lc.c.self->request(lc.compute, 60s, blob_piece_atom::value, std::move(header), ref)
        .receive([&](task_result& r) { got = std::move(r); },
                 [&](caf::error& e) { got = std::move(e); });
      REQUIRE_MESSAGE(got, text(got));
      task_tensors t{id, in};
      auto want = direct->infer({&t});
      REQUIRE(want[0]);
      CHECK(got->outputs == want[0]->specs);
      CHECK(got->output == want[0]->bytes);
    }
    auto st = lc.c.stats(lc.compute);
    CHECK(st["blob_file_tasks"] == 5);
    CHECK(st["blob_files_open"] == 4);
    CHECK(st["buffers_reused"] == 2);
    CHECK(st["blob_file_in_place"] == 1);
    // The first task found every executor idle and nothing queued: it woke the kernels' pool
    // on arrival (later ones may have, after a quiet spell of their own).
    CHECK(st["early_pool_wakes"].get<uint64_t>() >= 1);
    CHECK(st["early_pool_wakes"].get<uint64_t>() <= 5);
  }

  TEST_CASE("in process: inference tasks sent at once, the next batch waiting at the executor "
            "while it runs one, each get their own result and the executor's stats count them") {
    local_compute lc{actors::compute_config{}}; // each task its own batch
    auto file = test::must(make_mlp_file({20, 8, 5}, 9));
    auto loaded = lc.send(1, piece_kind::load_model, "mlp", 1, as_bytes(file));
    REQUIRE_MESSAGE(loaded, text(loaded));
    auto direct = test::must(find_runner("mlp")->load(file, kernels::cpu()));
    std::vector<tensor_pack> inputs;
    std::vector<handle_t> handles;
    for (uint32_t k = 0; k < 6; ++k) {
      inputs.push_back(mlp_input(200 + 50 * k, 20, 20 + k));
      handles.push_back(
        lc.request(30 + k, piece_kind::infer, "mlp", 1, inputs[k].bytes, inputs[k].specs));
    }
    for (uint32_t k = 0; k < 6; ++k) {
      caf::expected<task_result> got = make_error(errc::timeout, "no reply");
      handles[k].receive([&](task_result& r) { got = std::move(r); },
                         [&](caf::error& e) { got = std::move(e); });
      REQUIRE_MESSAGE(got, text(got));
      CHECK(got->task_id == 30 + k);
      CHECK(got->batch_size == 1);
      CHECK(got->model_version == 1);
      task_tensors t{30 + k, inputs[k]};
      auto want = direct->infer({&t});
      REQUIRE(want[0]);
      CHECK(got->outputs == want[0]->specs);
      CHECK(got->output == want[0]->bytes);
    }
    auto st = lc.c.stats(lc.compute);
    REQUIRE(st["executors"].size() == 1);
    CHECK(st["executors"][0]["batches"] == 6);
    CHECK(st["executors"][0]["tasks"] == 6);
    CHECK(st["executors"][0]["outstanding"] == 0);
    CHECK(st["completed"] == 7); // the load and the six tasks
    CHECK(st["models"][0]["tasks_run"] == 6);
    CHECK(st["models"][0]["pending"] == 0);
  }

  TEST_CASE("in process: a version over the model memory bound is refused, the active one "
            "keeps serving") {
    actors::compute_config cfg;
    cfg.model_memory_limit = size_t{1} << 20;
    local_compute lc{cfg};
    // 100-256-10 holds about 0.43 MiB (weights, gradients, Adam moments), 100-512-10 about
    // 0.87 MiB (does not fit next to it), 100-1024-10 about 1.7 MiB (never fits).
    auto v1 = test::must(make_mlp_file({100, 256, 10}, 1));
    auto v2 = test::must(make_mlp_file({100, 512, 10}, 2));
    auto v3 = test::must(make_mlp_file({100, 1024, 10}, 3));
    REQUIRE(lc.send(1, piece_kind::load_model, "mlp", 1, as_bytes(v1)));
    auto r2 = lc.send(2, piece_kind::load_model, "mlp", 2, as_bytes(v2));
    REQUIRE(!r2);
    CHECK(is(r2.error(), errc::bad_model));
    INFO(text(r2));
    CHECK(text(r2).find("model 'mlp' version 2 (mlp) needs 0.9 MiB, 0.6 MiB free of 1.0 MiB")
          != std::string::npos);
    auto r3 = lc.send(3, piece_kind::load_model, "mlp", 3, as_bytes(v3));
    REQUIRE(!r3);
    CHECK(text(r3).find("larger than the model memory limit") != std::string::npos);
    auto models = lc.models();
    REQUIRE(models.size() == 1);
    CHECK(models[0]["version"] == 1);
    CHECK(models[0]["active"] == true);
    auto in = mlp_input(1, 100, 5);
    auto r = lc.send(4, piece_kind::infer, "mlp", 0, in.bytes, in.specs);
    REQUIRE_MESSAGE(r, text(r));
    CHECK(r->model_version == 1);
    // Unknown kinds and files no runner serves are refused, naming the kinds.
    auto teapot = test::must(kernels::encode_safetensors({}, {{"comb.kind", "teapot"}}));
    auto rt = lc.send(5, piece_kind::load_model, "pot", 1, as_bytes(teapot));
    REQUIRE(!rt);
    CHECK(is(rt.error(), errc::bad_model));
    CHECK(text(rt).find("teapot") != std::string::npos);
    CHECK(text(rt).find("mobilenet_v2") != std::string::npos);
  }

  TEST_CASE("in process: a superseded version is unloaded after its last task; versions not "
            "held answer model_not_loaded") {
    actors::compute_config cfg;
    cfg.unload_grace = std::chrono::milliseconds{0};
    local_compute lc{cfg};
    auto v1 = test::must(make_mlp_file({20, 8, 5}, 1));
    auto v2 = test::must(make_mlp_file({20, 8, 5}, 2));
    REQUIRE(lc.send(1, piece_kind::load_model, "mlp", 1, as_bytes(v1)));
    // Loaded without activating (a reload): v1 stays the active version.
    REQUIRE(lc.send(2, piece_kind::reload_model, "mlp", 2, as_bytes(v2)));
    // A task on v1 with one of its two pieces pooled holds v1 across the activation of v2.
    auto in = mlp_input(2, 20, 6);
    auto half = in.bytes.size() / 2;
    auto first = lc.c.send_raw(lc.compute, encode_piece(3, piece_kind::infer, "mlp", 1, 0, 2,
                                                        in.bytes.data(), half, in.specs));
    REQUIRE_MESSAGE(first, text(first));
    CHECK(!first->complete);
    uint32_t previous = 0;
    lc.c.self->request(lc.compute, 10s, activate_atom::value, std::string{"mlp"}, uint32_t{2})
      .receive([&](uint32_t p) { previous = p; }, [&](caf::error& e) { FAIL(describe(e)); });
    CHECK(previous == 1);
    auto models = lc.models();
    REQUIRE(models.size() == 2);
    CHECK(models[0]["superseded"] == true);
    CHECK(models[0]["pending"] == 1);
    auto second = lc.c.send_raw(lc.compute,
                                encode_piece(3, piece_kind::infer, "mlp", 1, 1, 2,
                                             in.bytes.data() + half, in.bytes.size() - half));
    REQUIRE_MESSAGE(second, text(second));
    CHECK(second->complete);
    CHECK(second->model_version == 1);
    models = lc.models();
    REQUIRE(models.size() == 1);
    CHECK(models[0]["version"] == 2);
    auto st = lc.c.stats(lc.compute);
    CHECK(st["unloaded"] == nlohmann::json::array({"mlp:1"}));
    // v1 is gone: a task pinned to it answers model_not_loaded; so does an unknown model.
    auto pinned = lc.send(4, piece_kind::infer, "mlp", 1, in.bytes, in.specs);
    REQUIRE(!pinned);
    CHECK(is(pinned.error(), errc::model_not_loaded));
    auto unknown = lc.send(5, piece_kind::infer, "nobody", 0, in.bytes, in.specs);
    REQUIRE(!unknown);
    CHECK(is(unknown.error(), errc::model_not_loaded));
    // Loaded again (what the dispatcher does on model_not_loaded), the pinned task runs.
    REQUIRE(lc.send(6, piece_kind::reload_model, "mlp", 1, as_bytes(v1)));
    auto again = lc.send(7, piece_kind::infer, "mlp", 1, in.bytes, in.specs);
    REQUIRE_MESSAGE(again, text(again));
    CHECK(again->model_version == 1);
    CHECK(again->output == second->output);
    // ... and, not the active version, it goes again once that task is done (version 2
    // stays active: a reload does not activate).
    models = lc.models();
    REQUIRE(models.size() == 1);
    CHECK(models[0]["version"] == 2);
    CHECK(models[0]["active"] == true);
    // An activation's load (load_model) makes its version the active one, even an older
    // one (a rollback), and supersedes the others.
    REQUIRE(lc.send(8, piece_kind::load_model, "mlp", 1, as_bytes(v1)));
    models = lc.models();
    REQUIRE(models.size() == 1);
    CHECK(models[0]["version"] == 1);
    CHECK(models[0]["active"] == true);
  }

  TEST_CASE("in process: a late duplicate piece of a queued task does not let its version go") {
    actors::compute_config cfg;
    cfg.batching["mlp"] = actors::batch_policy{2, std::chrono::milliseconds{5000}};
    cfg.unload_grace = std::chrono::milliseconds{0};
    local_compute lc{cfg};
    auto v1 = test::must(make_mlp_file({20, 8, 5}, 1));
    auto v2 = test::must(make_mlp_file({20, 8, 5}, 2));
    // Loads never wait for a batch: both versions load at once.
    auto l1 = lc.request(1, piece_kind::load_model, "mlp", 1, as_bytes(v1));
    auto l2 = lc.request(2, piece_kind::reload_model, "mlp", 2, as_bytes(v2));
    for (auto* h : {&l1, &l2})
      h->receive([](task_result&) {}, [](caf::error& e) { FAIL(describe(e)); });
    auto in = mlp_input(2, 20, 8);
    auto piece = encode_piece(3, piece_kind::infer, "mlp", 1, 0, 1, in.bytes.data(),
                              in.bytes.size(), in.specs);
    // Task 3 is whole and queued (waiting for a second task); its piece sent again is refused.
    auto queued = lc.c.self->request(lc.compute, 60s, piece_atom::value, piece);
    auto dup = lc.c.send_raw(lc.compute, piece);
    REQUIRE(!dup);
    CHECK(is(dup.error(), errc::protocol_error));
    lc.c.self->request(lc.compute, 10s, activate_atom::value, std::string{"mlp"}, uint32_t{2})
      .receive([](uint32_t) {}, [](caf::error& e) { FAIL(describe(e)); });
    auto models = lc.models();
    REQUIRE(models.size() == 2);
    CHECK(models[0]["pending"] == 1);
    // A second task on v1 completes the batch: both run on v1, which then goes.
    auto other = lc.send(4, piece_kind::infer, "mlp", 1, in.bytes, in.specs);
    REQUIRE_MESSAGE(other, text(other));
    CHECK(other->model_version == 1);
    queued.receive([](task_result& r) { CHECK(r.model_version == 1); },
                   [](caf::error& e) { FAIL(describe(e)); });
    CHECK(lc.models().size() == 1);
  }
} // TEST_SUITE
