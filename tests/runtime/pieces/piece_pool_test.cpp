// Unit tests of runtime::piece (Cap'n Proto encoding) and runtime::piece_pool: reassembly in
// any order, every malformed case, per-task timeout, memory bound with back-pressure, typed
// tensor specs on the wire and in the pool.
#include "runtime/pieces/builtin_tasks.hpp"
#include "base/errc.hpp"
#include "runtime/pieces/piece.hpp"
#include "runtime/pieces/piece_pool.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>

using namespace comb;
using namespace comb::runtime;
using namespace std::chrono_literals;

namespace {

piece make_piece(uint64_t task, uint32_t no, uint32_t count, size_t size, char fill = 'x') {
  piece p;
  p.task_id = task;
  p.model_id = "checksum";
  p.piece_no = no;
  p.piece_count = count;
  p.payload.assign(size, fill);
  return p;
}

std::string text_of(const caf::error& e) {
  return describe(e);
}

} // namespace

TEST_SUITE("runtime.pieces.piece_pool") {
  TEST_CASE("a piece survives Cap'n Proto encoding") {
    piece p = make_piece(42, 3, 7, 1000, 'q');
    p.kind = piece_kind::load_model;
    p.model_id = "mnist";
    p.model_version = 9;
    auto bytes = encode_piece(p);
    auto q = decode_piece(bytes);
    REQUIRE(q);
    CHECK(q->task_id == 42);
    CHECK(q->kind == piece_kind::load_model);
    CHECK(q->model_id == "mnist");
    CHECK(q->model_version == 9);
    CHECK(q->piece_no == 3);
    CHECK(q->piece_count == 7);
    CHECK(q->payload == p.payload);
  }

  TEST_CASE("pieces encode aligned, unaligned and empty payloads; decoding may keep the buffer") {
    std::vector<char> source(3001);
    std::mt19937 rng{5};
    for (auto& c : source)
      c = static_cast<char>(rng());
    // Aligned data is sent as a second segment, unaligned data is copied into one segment.
    for (size_t offset : {0u, 1u, 8u}) {
      for (size_t size : {0u, 1u, 7u, 8u, 2993u}) {
        const char* data = source.data() + offset;
        auto bytes = encode_piece(7, piece_kind::infer, "m", 0, 1, 2, data, size);
        CHECK(bytes.size() % 8 == 0);
        std::vector<char> want(data, data + size);
        auto copied = decode_piece(bytes);
        REQUIRE_MESSAGE(copied, "offset " << offset << " size " << size);
        CHECK(std::vector<char>(copied->payload.begin(), copied->payload.end()) == want);
        auto kept = decode_piece(std::move(bytes)); // payload is a window into the message
        REQUIRE(kept);
        CHECK(kept->payload.size() == size);
        CHECK(std::vector<char>(kept->payload.begin(), kept->payload.end()) == want);
        CHECK(kept->task_id == 7);
        CHECK(kept->piece_no == 1);
        CHECK(kept->piece_count == 2);
        CHECK(kept->model_id == "m");
      }
    }
  }

  TEST_CASE("bytes that are not a piece give corrupt_data, not a crash") {
    std::vector<char> junk{'a', 'b', 'c'};
    auto r = decode_piece(junk);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::corrupt_data));
    std::mt19937 rng{7};
    auto good = encode_piece(make_piece(1, 0, 1, 64));
    for (int i = 0; i < 200; ++i) {
      auto bad = good;
      for (int k = 0; k < 4; ++k)
        bad[rng() % bad.size()] = static_cast<char>(rng());
      auto d = decode_piece(bad); // must not throw or crash; may decode to something else
      if (!d)
        CHECK(is(d.error(), errc::corrupt_data));
    }
    std::vector<char> huge_segment(16, 0);
    huge_segment[4] = '\xff';
    huge_segment[5] = '\xff';
    huge_segment[6] = '\xff';
    auto h = decode_piece(huge_segment);
    REQUIRE(!h);
    CHECK(is(h.error(), errc::corrupt_data));
  }

  TEST_CASE("pieces in any order reassemble byte for byte") {
    piece_pool pool;
    std::vector<char> payload(5 * 1000 + 123);
    std::mt19937 rng{1};
    for (auto& c : payload)
      c = static_cast<char>(rng());
    uint32_t count = piece_count_for(payload.size(), 1000);
    CHECK(count == 6);
    std::vector<uint32_t> order(count);
    std::iota(order.begin(), order.end(), 0u);
    std::shuffle(order.begin(), order.end(), rng);
    std::optional<pooled_task> done;
    for (size_t k = 0; k < order.size(); ++k) {
      auto no = order[k];
      piece p = make_piece(9, no, count, 0);
      auto begin = payload.begin() + no * 1000;
      auto end = no + 1 == count ? payload.end() : begin + 1000;
      p.payload.assign(begin, end);
      auto r = pool.add(std::move(p));
      REQUIRE(r);
      if (k + 1 < order.size()) {
        CHECK(!*r);
        CHECK(pool.incomplete_tasks() == 1);
      } else {
        REQUIRE(*r);
        done = std::move(**r);
      }
    }
    REQUIRE(done);
    CHECK(done->flatten() == payload);
    CHECK(done->total_bytes == payload.size());
    CHECK(pool.incomplete_tasks() == 0);
    CHECK(pool.reserved_bytes() == 0);
    CHECK(pool.held_bytes() == 0);
  }

  TEST_CASE("each malformed piece gets its own clear error and the pool keeps serving") {
    piece_pool pool;
    REQUIRE(pool.add(make_piece(1, 0, 3, 10)));
    SUBCASE("duplicate piece") {
      auto r = pool.add(make_piece(1, 0, 3, 10));
      REQUIRE(!r);
      CHECK(is(r.error(), errc::protocol_error));
      CHECK(text_of(r.error()).find("duplicate piece") != std::string::npos);
    }
    SUBCASE("pieceNo of pieceCount or more") {
      auto r = pool.add(make_piece(1, 3, 3, 10));
      REQUIRE(!r);
      CHECK(is(r.error(), errc::protocol_error));
      CHECK(text_of(r.error()).find("pieceNo 3 is not below pieceCount 3") != std::string::npos);
    }
    SUBCASE("pieceCount disagreeing with earlier pieces") {
      auto r = pool.add(make_piece(1, 1, 4, 10));
      REQUIRE(!r);
      CHECK(is(r.error(), errc::protocol_error));
      CHECK(text_of(r.error()).find("pieceCount 4 disagrees with 3") != std::string::npos);
    }
    SUBCASE("pieceCount of zero") {
      auto r = pool.add(make_piece(2, 0, 0, 10));
      REQUIRE(!r);
      CHECK(is(r.error(), errc::protocol_error));
    }
    SUBCASE("piece over 1 MiB") {
      auto r = pool.add(make_piece(1, 1, 3, max_piece_payload + 1));
      REQUIRE(!r);
      CHECK(is(r.error(), errc::too_large));
      CHECK(text_of(r.error()).find("exceeds the limit of 1048576 bytes") != std::string::npos);
    }
    SUBCASE("model disagreeing with earlier pieces") {
      auto p = make_piece(1, 1, 3, 10);
      p.model_id = "echo";
      auto r = pool.add(std::move(p));
      REQUIRE(!r);
      CHECK(is(r.error(), errc::protocol_error));
    }
    SUBCASE("duplicate piece of a task already complete") {
      REQUIRE(pool.add(make_piece(5, 0, 1, 10)));
      auto r = pool.add(make_piece(5, 0, 1, 10));
      REQUIRE(!r);
      CHECK(is(r.error(), errc::protocol_error));
      CHECK(text_of(r.error()).find("already complete") != std::string::npos);
    }
    // After any of the errors the task still completes with its good pieces.
    REQUIRE(pool.add(make_piece(1, 1, 3, 10)));
    auto last = pool.add(make_piece(1, 2, 3, 10));
    REQUIRE(last);
    REQUIRE(*last);
    CHECK((*last)->total_bytes == 30);
  }

  TEST_CASE("an incomplete task expires and its memory is freed") {
    piece_pool_config cfg;
    cfg.task_timeout = 100ms;
    piece_pool pool{cfg};
    auto t0 = piece_pool::clock::now();
    REQUIRE(pool.add(make_piece(7, 0, 2, 1000), t0));
    CHECK(pool.held_bytes() == 1000);
    CHECK(pool.reserved_bytes() == 2 * max_piece_payload);
    REQUIRE(pool.next_expiry());
    CHECK(pool.expire(t0 + 50ms).empty());
    auto gone = pool.expire(t0 + 100ms);
    REQUIRE(gone.size() == 1);
    CHECK(gone[0] == 7);
    CHECK(pool.held_bytes() == 0);
    CHECK(pool.reserved_bytes() == 0);
    CHECK(pool.incomplete_tasks() == 0);
    auto late = pool.add(make_piece(7, 1, 2, 1000), t0 + 150ms);
    REQUIRE(!late);
    CHECK(is(late.error(), errc::timeout));
    CHECK(text_of(late.error()).find("expired") != std::string::npos);
  }

  TEST_CASE("the memory bound applies back-pressure and never deadlocks admitted tasks") {
    piece_pool_config cfg;
    cfg.max_piece = 100;
    cfg.memory_limit = 1000; // room for two 4-piece tasks (400 bytes each), not three
    piece_pool pool{cfg};
    REQUIRE(pool.add(make_piece(1, 0, 4, 100)));
    REQUIRE(pool.add(make_piece(2, 0, 4, 100)));
    auto third = pool.add(make_piece(3, 0, 4, 100));
    REQUIRE(!third);
    CHECK(is(third.error(), errc::overloaded));
    CHECK(pool.incomplete_tasks() == 2);
    // Single-piece tasks hold nothing and pass.
    REQUIRE(pool.add(make_piece(4, 0, 1, 100)));
    // A task that could never fit is too_large, not overloaded.
    auto huge = pool.add(make_piece(5, 0, 11, 100));
    REQUIRE(!huge);
    CHECK(is(huge.error(), errc::too_large));
    // Admitted tasks complete; then the rejected task is admitted on retry.
    for (uint32_t no = 1; no < 4; ++no)
      REQUIRE(pool.add(make_piece(1, no, 4, 100)));
    CHECK(pool.incomplete_tasks() == 1);
    REQUIRE(pool.add(make_piece(3, 0, 4, 100)));
    CHECK(pool.reserved_bytes() == 800);
  }

  TEST_CASE("checksum is independent of how the payload is cut") {
    std::vector<char> data(10007);
    std::mt19937 rng{3};
    for (auto& c : data)
      c = static_cast<char>(rng());
    auto whole = checksum_output({data});
    for (size_t cut : {1u, 7u, 8u, 13u, 1000u, 4096u}) {
      std::vector<payload_buffer> chunks;
      for (size_t i = 0; i < data.size(); i += cut)
        chunks.emplace_back(
          std::vector<char>(data.begin() + i, data.begin() + std::min(data.size(), i + cut)));
      CHECK(checksum_output(chunks) == whole);
    }
    auto changed = data;
    changed[5000] ^= 1;
    CHECK(checksum_output({changed}) != whole);
    auto parsed = parse_checksum_output(whole);
    REQUIRE(parsed);
    CHECK(parsed->second == data.size());
  }

  TEST_CASE("matmul multiplies and rejects a payload that disagrees with its header") {
    std::vector<float> a{1, 2, 3, 4, 5, 6}; // 2x3
    std::vector<float> b{1, 0, 0, 1, 1, 1}; // 3x2
    auto out = matmul_output(make_matmul_payload(2, 3, 2, a, b));
    REQUIRE(out);
    REQUIRE(out->size() == 4 * sizeof(float));
    std::vector<float> c(4);
    std::memcpy(c.data(), out->data(), out->size());
    CHECK(c == std::vector<float>{4, 5, 10, 11});
    auto bad = make_matmul_payload(2, 3, 2, a, b);
    bad.pop_back();
    auto r = matmul_output(bad);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::invalid_argument));
  }

  TEST_CASE("tensor specs ride on the piece, aligned or not, and come back equal") {
    std::vector<tensor_spec> specs{make_spec("images", tensor_dtype::u8, {2, 8, 8, 3}),
                                   make_spec("x", tensor_dtype::f32, {}),
                                   tensor_spec{"requests", 4, {3}, 40}};
    std::vector<char> source(2 * 8 * 8 * 3 + 4 + 40 + 1, 'p');
    for (size_t offset : {0u, 1u}) {
      const char* data = source.data() + offset;
      size_t size = source.size() - 1;
      auto bytes = encode_piece(3, piece_kind::infer, "mobilenet_v2", 5, 0, 2, data, size, specs);
      for (int keep = 0; keep < 2; ++keep) {
        auto q = keep ? decode_piece(std::vector<char>(bytes)) : decode_piece(bytes);
        REQUIRE_MESSAGE(q, "offset " << offset);
        CHECK(q->tensors == specs);
        CHECK(q->model_id == "mobilenet_v2");
        CHECK(q->model_version == 5);
        CHECK(q->payload.size() == size);
        CHECK(std::equal(q->payload.begin(), q->payload.end(), data));
      }
    }
    // Many long names still fit the header (the payload stays the second segment).
    std::vector<tensor_spec> many;
    for (int i = 0; i < 64; ++i)
      many.push_back(make_spec(std::string(100, 'a' + i % 26) + std::to_string(i),
                               tensor_dtype::i32, {1, 1, 1, 1, 1, 1, 1, 2}));
    alignas(8) static char aligned[64 * 8] = {};
    auto bytes = encode_piece(4, piece_kind::train, "mlp", 0, 0, 1, aligned, sizeof(aligned), many);
    auto q = decode_piece(std::move(bytes));
    REQUIRE(q);
    CHECK(q->tensors == many);
    CHECK(q->kind == piece_kind::train);
    // A piece without specs decodes with none.
    auto plain = decode_piece(encode_piece(make_piece(5, 0, 1, 16)));
    REQUIRE(plain);
    CHECK(plain->tensors.empty());
  }

  TEST_CASE("malformed specs on the wire are corrupt_data naming the task and the tensor") {
    std::vector<char> payload(16, 'z');
    auto unknown = encode_piece(8, piece_kind::infer, "m", 0, 0, 1, payload.data(), payload.size(),
                                {tensor_spec{"x", 7, {16}, 16}});
    auto r = decode_piece(unknown);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::corrupt_data));
    CHECK_MESSAGE(text_of(r.error()).find("task 8: tensor spec 0 'x' has unknown dtype 7")
                    != std::string::npos,
                  text_of(r.error()));
    auto deep = encode_piece(9, piece_kind::infer, "m", 0, 0, 1, payload.data(), payload.size(),
                             {make_spec("y", tensor_dtype::u8, std::vector<int64_t>(9, 1))});
    r = decode_piece(deep);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::corrupt_data));
    CHECK_MESSAGE(text_of(r.error()).find("'y' has 9 dimensions, more than 8") != std::string::npos,
                  text_of(r.error()));
  }

  TEST_CASE("the pool hands piece 0's specs with the task and checks them against the payload") {
    piece_pool pool;
    auto p0 = make_piece(20, 0, 2, 12);
    p0.tensors = {make_spec("a", tensor_dtype::f32, {2}), make_spec("b", tensor_dtype::u8, {12})};
    // Piece 1 first: the specs come with piece 0, whenever it arrives.
    REQUIRE(pool.add(make_piece(20, 1, 2, 8)));
    auto done = pool.add(p0);
    REQUIRE_MESSAGE(done, text_of(done ? caf::error{} : done.error()));
    REQUIRE(*done);
    CHECK((*done)->inputs == p0.tensors);
    CHECK((*done)->total_bytes == 20);

    // Specs that do not add up to the payload: the whole task is refused and freed.
    auto bad0 = make_piece(21, 0, 2, 12);
    bad0.tensors = {make_spec("a", tensor_dtype::f32, {5})};
    REQUIRE(pool.add(bad0));
    CHECK(pool.held_bytes() == 12);
    auto bad = pool.add(make_piece(21, 1, 2, 12));
    REQUIRE(!bad);
    CHECK(is(bad.error(), errc::invalid_argument));
    CHECK_MESSAGE(text_of(bad.error()).find("task 21") != std::string::npos, text_of(bad.error()));
    CHECK(text_of(bad.error()).find("24-byte payload") != std::string::npos);
    CHECK(pool.incomplete_tasks() == 0);
    CHECK(pool.held_bytes() == 0);
    CHECK(pool.reserved_bytes() == 0);
    // The task is gone: a late piece is told so.
    auto late = pool.add(make_piece(21, 1, 2, 12));
    REQUIRE(!late);
    CHECK(is(late.error(), errc::protocol_error));

    // A single-piece task is checked too.
    auto one = make_piece(22, 0, 1, 10);
    one.tensors = {tensor_spec{"s", 4, {1}, 10}};
    auto single = pool.add(one);
    REQUIRE(single);
    one.task_id = 23;
    one.tensors[0].bytes = 3;
    single = pool.add(one);
    REQUIRE(!single);
    CHECK(is(single.error(), errc::invalid_argument));
  }

  TEST_CASE("specs on a piece other than 0 are a protocol error") {
    piece_pool pool;
    REQUIRE(pool.add(make_piece(30, 0, 2, 10)));
    auto p1 = make_piece(30, 1, 2, 10);
    p1.tensors = {make_spec("a", tensor_dtype::u8, {20})};
    auto r = pool.add(p1);
    REQUIRE(!r);
    CHECK(is(r.error(), errc::protocol_error));
    CHECK_MESSAGE(text_of(r.error()).find("only piece 0") != std::string::npos, text_of(r.error()));
    // The task still completes with a good piece 1.
    auto last = pool.add(make_piece(30, 1, 2, 10));
    REQUIRE(last);
    CHECK(*last);
  }

} // TEST_SUITE
