// perf/provenance: the cost of a spooler's pass over a growing log segment. A log of
// --records=N transfer-shaped records (one 64 MiB segment, as a node's) grows by --batch=K
// records a pass (a node at K requests/s, the spooler's 1 s pass); each pass reads the records
// from the last one read on. Per pass, in turns, in the same run: a fresh log_reader (a reader
// per pass: the whole segment read, each frame's CRC checked, each record decoded, as the
// spooler's passes did before its reader was kept) against one kept log_reader (resumes where
// the last pass stopped). Thread CPU per pass (median of --passes=P), and the ratio. With
// --values=msgpack the records' arguments and result are MessagePack, as the recorder keeps
// them (storage/record_value.hpp), which decoding turns back into JSON text.
//   perf_log_tail [--records=N] [--batch=K] [--passes=P] [--values=text|msgpack] [--quick]
#include "base/errc.hpp"
#include "perf/bench_env.hpp"
#include "perf/provenance/transfer_record.hpp"
#include "storage/log_record.hpp"
#include "storage/provenance_log.hpp"
#include "storage/record_value.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

using namespace comb;

namespace {

bool msgpack_values = false;

/// perf_log's transfer record at `lsn` (its arguments and result as MessagePack with
/// --values=msgpack).
storage::log_record transfer_record_at(uint64_t lsn) {
  auto r = perf::transfer_record(lsn);
  r.lsn = lsn;
  if (msgpack_values) {
    for (auto* field : {&r.payload, &r.result}) {
      auto value = nlohmann::json::parse(*field);
      field->clear();
      storage::append_record_value(*field, value);
    }
  }
  return r;
}

double thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
  comb::perf::print_machine("perf_log_tail");
  uint64_t n = 200'000, batch = 800, passes = 30;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--records=", 0) == 0)
      n = std::stoull(a.substr(10));
    else if (a.rfind("--batch=", 0) == 0)
      batch = std::stoull(a.substr(8));
    else if (a.rfind("--passes=", 0) == 0)
      passes = std::stoull(a.substr(9));
    else if (a == "--values=msgpack" || a == "--values=text")
      msgpack_values = a == "--values=msgpack";
    else if (a == "--quick")
      n = 50'000, passes = 10;
    else {
      std::fprintf(stderr, "usage: perf_log_tail [--records=N] [--batch=K] [--passes=P] "
                           "[--values=text|msgpack] [--quick]\n");
      return 2;
    }
  }
  auto dir = std::filesystem::temp_directory_path()
             / ("comb_perf_log_tail_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    auto w = storage::log_writer::open(dir.string());
    if (!w) {
      std::fprintf(stderr, "perf_log_tail: %s\n", describe(w.error()).c_str());
      return 1;
    }
    auto writer = std::move(*w);
    auto append = [&](uint64_t k) {
      for (uint64_t i = 0; i < k; ++i) {
        auto lsn = writer->next_lsn();
        if (writer->append(lsn, storage::encode(transfer_record_at(lsn))))
          std::exit(1);
      }
      if (writer->flush())
        std::exit(1);
    };
    append(n);
    auto kept = storage::log_reader::open(dir.string());
    if (!kept)
      return 1;
    uint64_t from_fresh = 1, from_kept = 1;
    auto pass = [&](const storage::log_reader& r, uint64_t& from) {
      uint64_t got = 0;
      double t0 = thread_cpu();
      if (auto err = r.for_each(from, [&](storage::log_record&& rec) {
            from = rec.lsn + 1;
            ++got;
            return true;
          })) {
        std::fprintf(stderr, "perf_log_tail: %s\n", describe(err).c_str());
        std::exit(1);
      }
      return std::make_pair(thread_cpu() - t0, got);
    };
    // Both start where the log is now.
    pass(*kept, from_kept);
    from_fresh = from_kept;
    std::vector<double> fresh_s, kept_s;
    uint64_t fresh_n = 0, kept_n = 0;
    for (uint64_t p = 0; p < passes; ++p) {
      append(batch);
      auto fresh = storage::log_reader::open(dir.string());
      if (p % 2 == 0) {
        auto [a, an] = pass(*fresh, from_fresh);
        auto [b, bn] = pass(*kept, from_kept);
        fresh_s.push_back(a), kept_s.push_back(b), fresh_n += an, kept_n += bn;
      } else {
        auto [b, bn] = pass(*kept, from_kept);
        auto [a, an] = pass(*fresh, from_fresh);
        fresh_s.push_back(a), kept_s.push_back(b), fresh_n += an, kept_n += bn;
      }
    }
    std::error_code ec;
    auto seg_bytes = std::filesystem::file_size(dir / kept->segments().back(), ec);
    std::printf("log: %llu records (values as %s), last segment %.1f MiB; %llu passes of %llu "
                "new records\n",
                static_cast<unsigned long long>(writer->next_lsn() - 1),
                msgpack_values ? "MessagePack" : "JSON text", static_cast<double>(seg_bytes) / (1 << 20),
                static_cast<unsigned long long>(passes), static_cast<unsigned long long>(batch));
    std::printf("records returned: fresh reader %llu, kept reader %llu%s\n",
                static_cast<unsigned long long>(fresh_n), static_cast<unsigned long long>(kept_n),
                fresh_n == kept_n ? "" : "  (MISMATCH)");
    double f = median(fresh_s), k = median(kept_s);
    std::printf("thread CPU per pass (median): fresh reader %.3f ms, kept reader %.3f ms, "
                "kept/fresh %.4f\n",
                f * 1e3, k * 1e3, f > 0 ? k / f : 0.0);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
