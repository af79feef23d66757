// libFuzzer target: the provenance log's record decoder and segment reader must never crash,
// hang or read out of bounds on arbitrary bytes; whatever they accept must re-encode. Odd first
// byte: the rest is one record (decode and decode_head); even: a segment after a valid header.
#include "storage/log_record.hpp"
#include "storage/provenance_log.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace {

// A log folder whose one segment is a valid header followed by the fuzz bytes.
const std::string& log_dir() {
  static std::string dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("comb-fuzz-log-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    auto w = comb::storage::log_writer::open(d.string());
    if (!w)
      std::abort();
    (void) (*w)->append(1, comb::storage::encode(comb::storage::log_record{}));
    return d.string();
  }();
  return dir;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string_view bytes{reinterpret_cast<const char*>(data) + 1, size - 1};
  if (data[0] & 1) {
    auto r = comb::storage::decode(bytes);
    if (r) {
      auto again = comb::storage::decode(comb::storage::encode(*r));
      if (!again || again->lsn != r->lsn || again->changes.size() != r->changes.size())
        std::abort();
    }
    // A WAL head (record without its rows, announced by row flags) or a whole record.
    auto head = comb::storage::decode_head(bytes);
    if (head && !head->row_flags.empty() && !head->changes.empty())
      std::abort();
    if (r && !head)
      std::abort(); // whatever decode() accepts, decode_head() accepts
    return 0;
  }
  const auto& dir = log_dir();
  auto seg = dir + "/00000000000000000001.plog";
  std::string head;
  {
    std::ifstream in{seg, std::ios::binary};
    head.resize(comb::storage::segment_header_bytes);
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
  }
  {
    std::ofstream out{seg, std::ios::binary | std::ios::trunc};
    out.write(head.data(), static_cast<std::streamsize>(head.size()));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  (void) comb::storage::verify_log(dir);
  return 0;
}
