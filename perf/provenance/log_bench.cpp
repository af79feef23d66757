// perf/provenance: provenance log append throughput (records/s, MB/s) against a plain
// sequential write of the same framed bytes, in the same run, three rounds each taking turns
// (medians compared). Both end with an fdatasync. First, a committed bank.transfer's record
// and WAL head encoded in format 2 (encode_committed: one encoding, the head a prefix) against
// format 1 (Cap'n Proto, the record and the head each built by encode_v1; the old
// encode_committed built one message and serialized it twice, so format 1 reads somewhat
// slower here than it ran in the recorder): bytes and records/s, three rounds each in turns.
//   perf_log [--records=N] [--quick]
#include "perf/bench_env.hpp"
#include "perf/provenance/transfer_record.hpp"
#include "storage/crc32c.hpp"
#include "storage/log_record.hpp"
#include "storage/provenance_log.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

using namespace comb;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

int main(int argc, char** argv) {
  comb::perf::print_machine("perf_log");
  size_t n = 500'000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--records=", 0) == 0)
      n = std::stoul(a.substr(10));
    else if (a == "--quick")
      n = 100'000;
    else {
      std::fprintf(stderr, "usage: perf_log [--records=N] [--quick]\n");
      return 2;
    }
  }
  {
    // The record as the recorder has it (an invocation_record) and as format 1 would write it.
    auto r = perf::transfer_record(7);
    storage::invocation_record rec;
    rec.execution_id = r.execution_id;
    rec.procedure = r.procedure;
    rec.role = r.role;
    rec.args = r.payload;
    rec.result = r.result;
    rec.status = r.status;
    rec.start_ns = r.timestamp_ns - 20'000;
    rec.end_ns = r.timestamp_ns;
    rec.sender = r.sender;
    rec.receiver = r.receiver;
    rec.partition = 2;
    rec.changes = r.changes;
    auto v1 = storage::to_log_record(rec);
    auto v1_head = v1;
    v1_head.changes.clear();
    for (auto& c : v1.changes)
      v1_head.row_flags.push_back(static_cast<char>(storage::row_flag(c)));
    std::string buf;
    size_t head_size = storage::encode_committed(buf, rec, 4);
    auto whole = buf.substr(4);
    auto old_whole = storage::encode_v1(v1), old_head = storage::encode_v1(v1_head);
    std::printf("record encoding: format 2 record %zu bytes, WAL head %zu; format 1 record %zu, "
                "head %zu\n",
                whole.size(), head_size - 4, old_whole.size(), old_head.size());
    constexpr int reps = 200'000;
    std::vector<double> now_s, old_s;
    size_t sink = 0;
    for (int round = 0; round < 3; ++round)
      for (int k = 0; k < 2; ++k) {
        bool now_turn = (k == 0) == (round % 2 == 0);
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < reps; ++i) {
          if (now_turn) {
            sink += storage::encode_committed(buf, rec, 4) + buf.size();
          } else {
            sink += storage::encode_v1(v1).size() + storage::encode_v1(v1_head).size();
          }
        }
        (now_turn ? now_s : old_s).push_back(seconds_since(t0));
      }
    std::sort(now_s.begin(), now_s.end());
    std::sort(old_s.begin(), old_s.end());
    std::printf("%-28s comb %12.0f  %-14s %12.0f  ratio %5.2f  records/s (record + head)%s\n",
                "encode format 2", reps / now_s[1], "format 1", reps / old_s[1],
                old_s[1] / now_s[1], sink == 0 ? " " : "");
  }
  std::vector<std::string> encoded;
  encoded.reserve(n);
  size_t bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    auto r = perf::transfer_record(i);
    r.lsn = i + 1;
    encoded.push_back(storage::encode(r));
    bytes += encoded.back().size() + 8;
  }
  auto base = std::filesystem::temp_directory_path()
              / ("comb-perf-log-" + std::to_string(getpid()));
  std::filesystem::remove_all(base);
  std::filesystem::create_directories(base);
  std::printf("perf_log: %zu records of ~%zu bytes, %u cores\n", n, bytes / n,
              std::thread::hardware_concurrency());

  // Baseline: the same framed bytes written sequentially in 1 MiB chunks, then fdatasync.
  auto plain_run = [&](int round) {
    auto path = (base / ("plain-" + std::to_string(round) + ".bin")).string();
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
      std::exit(1);
    std::string buf;
    auto t0 = std::chrono::steady_clock::now();
    for (auto& e : encoded) {
      char hdr[8];
      uint32_t len = static_cast<uint32_t>(e.size()), crc = 0;
      std::memcpy(hdr, &len, 4);
      std::memcpy(hdr + 4, &crc, 4);
      buf.append(hdr, 8);
      buf.append(e);
      if (buf.size() >= (1u << 20)) {
        if (::write(fd, buf.data(), buf.size()) < 0)
          std::exit(1);
        buf.clear();
      }
    }
    if (::write(fd, buf.data(), buf.size()) < 0 || ::fdatasync(fd) != 0)
      std::exit(1);
    double s = seconds_since(t0);
    ::close(fd);
    return s;
  };
  // Comb: log_writer (CRC32C framing, segment rotation at 64 MiB with an fdatasync of each full
  // segment), then sync.
  auto comb_run = [&](int round) {
    auto w = storage::log_writer::open((base / ("log-" + std::to_string(round))).string());
    if (!w)
      std::exit(1);
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < n; ++i)
      if ((*w)->append(i + 1, encoded[i]))
        std::exit(1);
    if ((*w)->sync())
      std::exit(1);
    return seconds_since(t0);
  };
  // Three rounds each, taking turns to go first; each run starts with no dirty pages left from
  // the one before (writeback of one run would otherwise slow the next), and its files are
  // removed after it. The ratio uses the median of each.
  std::vector<double> plain, comb;
  for (int round = 0; round < 3; ++round) {
    for (int k = 0; k < 2; ++k) {
      bool comb_turn = (k == 0) == (round % 2 == 1);
      ::sync();
      double s = comb_turn ? comb_run(round) : plain_run(round);
      (comb_turn ? comb : plain).push_back(s);
      std::printf("  round %d: %-11s %8.0f records/s  %7.1f MB/s\n", round + 1,
                  comb_turn ? "log append" : "plain write", n / s, bytes / 1e6 / s);
      std::filesystem::remove_all(base);
      std::filesystem::create_directories(base);
    }
  }
  std::sort(plain.begin(), plain.end());
  std::sort(comb.begin(), comb.end());
  double plain_s = plain[1], comb_s = comb[1];
  auto mb = static_cast<double>(bytes) / 1e6;
  std::printf("%-28s comb %12.0f  %-14s %12.0f  ratio %5.2f  records/s\n", "log append", n / comb_s,
              "plain write", n / plain_s, plain_s / comb_s);
  std::printf("%-28s comb %12.1f  %-14s %12.1f  ratio %5.2f  MB/s\n", "log append", mb / comb_s,
              "plain write", mb / plain_s, plain_s / comb_s);
  std::filesystem::remove_all(base);
  return 0;
}
