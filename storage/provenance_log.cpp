#include "storage/provenance_log.hpp"

#include "base/errc.hpp"
#include "base/sync_point.hpp"
#include "storage/crc32c.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace comb::storage {

namespace {

constexpr char magic[8] = {'C', 'O', 'M', 'B', 'P', 'L', 'O', 'G'};
constexpr uint32_t log_version = 1;
constexpr const char* cluster_file = "CLUSTER";

void put32(char* p, uint32_t v) {
  std::memcpy(p, &v, 4);
}
void put64(char* p, uint64_t v) {
  std::memcpy(p, &v, 8);
}
uint32_t get32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t get64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

std::string segment_name(uint64_t first_lsn) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%020llu.plog", static_cast<unsigned long long>(first_lsn));
  return buf;
}

// The lsn a segment's name says it starts at (list_segments checked the name).
uint64_t segment_lsn(const std::string& name) {
  return std::stoull(name.substr(0, 20));
}

std::string range_text(uint64_t first, uint64_t last) {
  return first == last ? "lsn " + std::to_string(first)
                       : "lsns " + std::to_string(first) + ".." + std::to_string(last);
}

// Names lsns [first, last] that no segment holds: before segment `next` (the log's first
// when `prev` is empty) and after `prev`.
std::string gap_text(const std::string& dir, uint64_t first, uint64_t last, const std::string& prev,
                     const std::string& next) {
  std::string where = prev.empty() ? "the log starts with segment " + next
                                       + ", and the segment(s) before it are gone"
                                   : "segment " + prev + " ends at lsn " + std::to_string(first - 1)
                                       + " and the next one is " + next
                                       + ": the segment(s) between them" + " are gone";
  return range_text(first, last) + " (" + std::to_string(last - first + 1)
         + " record(s)) are in no segment of " + dir + ": " + where
         + " (restore them; a node started with --accept-log-loss records the loss and goes on)";
}

// Segment i must start at `expect`: one that starts above it leaves lsns that no segment
// holds; one that starts below it overlaps the segment before it.
caf::error check_start(const std::string& dir, const std::vector<std::string>& segs, size_t i,
                       uint64_t expect) {
  uint64_t first = segment_lsn(segs[i]);
  if (first > expect)
    return make_error(errc::corrupt_data,
                      gap_text(dir, expect, first - 1, i == 0 ? "" : segs[i - 1], segs[i]));
  if (first < expect)
    return make_error(errc::corrupt_data,
                      "segment " + segs[i] + " starts at lsn " + std::to_string(first)
                        + (i == 0 ? std::string{", but a log starts at lsn 1"}
                                  : ", but segment " + segs[i - 1] + " holds lsns up to "
                                      + std::to_string(expect - 1)));
  return {};
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string make_header(uint64_t cluster, uint64_t first_lsn) {
  std::string h(segment_header_bytes, '\0');
  std::memcpy(h.data(), magic, 8);
  put32(h.data() + 8, log_version);
  put32(h.data() + 12, 0);
  put64(h.data() + 16, cluster);
  put64(h.data() + 24, first_lsn);
  put32(h.data() + 32, crc32c(h.data(), 32));
  return h;
}

caf::expected<uint64_t> read_cluster_file(const std::string& dir) {
  std::ifstream in{dir + "/" + cluster_file};
  if (!in)
    return make_error(errc::not_found,
                      dir + ": not a provenance log (no " + cluster_file + " file)");
  std::string tag, id;
  in >> tag >> id;
  if (tag != "comb-log-cluster" || id.size() != 16)
    return make_error(errc::corrupt_data, dir + "/" + cluster_file + ": not a Comb log id");
  return std::stoull(id, nullptr, 16);
}

// Segment files: 20 decimal digits and ".plog"; other names are not segments.
std::vector<std::string> list_segments(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    auto name = e.path().filename().string();
    if (name.size() == 25 && e.path().extension() == ".plog"
        && std::all_of(name.begin(), name.begin() + 20, [](char c) { return c >= '0' && c <= '9'; })
        && name.compare(0, 20, "18446744073709551615") <= 0)
      out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The result of reading one segment.
struct segment_scan {
  enum problem_t { none, torn_tail, corrupt, bad_header, foreign } problem = none;
  std::string what;
  uint64_t first_lsn = 0;
  /// End of the last good frame.
  uint64_t good_end = 0;
  uint64_t file_size = 0;
  uint64_t records = 0;
  uint64_t last_lsn = 0;
  /// The file read (st_dev, st_ino).
  uint64_t dev = 0;
  uint64_t ino = 0;
  /// A scan that started past the header found another file (st_dev, st_ino) than the one
  /// it was told, or one shorter than its start; it read no frame.
  bool shrunk = false;
};

// Reads bytes [start, end of file) of a segment with one sized pread (and its 40-byte header
// apart when start is past it); the file's identity goes into `s`.
caf::error read_segment(const std::string& path, uint64_t start, std::string& header,
                        std::string& body, segment_scan& s) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return make_error(errc::storage_error, path + ": cannot read");
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    ::close(fd);
    return make_error(errc::storage_error, path + ": cannot read");
  }
  s.dev = static_cast<uint64_t>(sb.st_dev);
  s.ino = static_cast<uint64_t>(sb.st_ino);
  auto pread_all = [&](std::string& out, uint64_t from, uint64_t n) {
    out.resize(n);
    uint64_t got = 0;
    while (got < n) {
      auto k = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(from + got));
      if (k < 0 && errno == EINTR)
        continue;
      if (k < 0)
        return false;
      if (k == 0)
        break; // cut short since the fstat
      got += static_cast<uint64_t>(k);
    }
    out.resize(got);
    return true;
  };
  auto size = static_cast<uint64_t>(sb.st_size);
  bool ok = true;
  if (start > segment_header_bytes) {
    ok = pread_all(header, 0, segment_header_bytes)
         && pread_all(body, start, size > start ? size - start : 0);
  } else {
    ok = pread_all(body, 0, size);
    header.clear();
  }
  ::close(fd);
  if (!ok)
    return make_error(errc::storage_error, path + ": cannot read: " + std::strerror(errno));
  return {};
}

// True when `b` ends in at least 64 zero bytes that start at a 512-byte boundary at or after
// `from`: the shape of file blocks that a write cut by a power loss never filled. (A record's
// own padding is at most 7 zero bytes.)
bool zero_from_sector(const char* data, uint64_t base, uint64_t size, uint64_t from) {
  constexpr uint64_t sector = 512;
  uint64_t z = size; // start of the trailing run of zeros
  while (z > from && data[z - 1 - base] == 0)
    --z;
  uint64_t boundary = (z + sector - 1) / sector * sector;
  return boundary >= from && boundary + 64 <= size;
}

// Reads a segment; calls fn(offset, body) for every good frame until fn returns false.
// `start` (0, or the end of a frame read before) is where the frames to read begin: the
// header is checked either way, and only the frames from `start` on are read and checked.
segment_scan scan_segment(const std::string& path, const std::string& name, uint64_t cluster,
                          const std::function<bool(uint64_t, std::string_view)>& fn,
                          uint64_t start = 0, uint64_t dev = 0, uint64_t ino = 0) {
  segment_scan s;
  std::string header, bytes;
  if (start <= segment_header_bytes)
    start = 0;
  if (auto err = read_segment(path, start, header, bytes, s)) {
    s.problem = segment_scan::bad_header;
    s.what = describe(err);
    return s;
  }
  if (start > 0 && (s.dev != dev || s.ino != ino)) {
    s.shrunk = true; // another file under the name: a resumed scan reads nothing of it
    return s;
  }
  if (start > 0 && (header.size() < segment_header_bytes || bytes.empty())) {
    // Nothing past `start`: the file ends there (nothing new), or it is shorter now.
    struct stat sb {};
    if (header.size() < segment_header_bytes || ::stat(path.c_str(), &sb) != 0
        || static_cast<uint64_t>(sb.st_size) < start) {
      s.shrunk = true;
      return s;
    }
  }
  // Bytes of the file from `base` on (`bytes`); `b` holds the header either way.
  const uint64_t base = start;
  const std::string& b = start > 0 ? header : bytes;
  s.file_size = base + bytes.size();
  if (s.file_size < segment_header_bytes) {
    // A header cut short by a crash while the segment was being started (its bytes so far the
    // magic number's, or zeros never written) holds no record: torn, like an empty file, which
    // the writer drops when it is the last segment. Other short bytes are a bad header.
    auto prefix = std::min<size_t>(b.size(), 8);
    bool torn = std::memcmp(b.data(), magic, prefix) == 0
                || std::all_of(b.begin(), b.end(), [](char c) { return c == 0; });
    s.problem = torn ? segment_scan::torn_tail : segment_scan::bad_header;
    s.what = name + ": header is " + std::to_string(b.size()) + " bytes, needs "
             + std::to_string(segment_header_bytes);
    return s;
  }
  if (std::memcmp(b.data(), magic, 8) != 0) {
    s.problem = segment_scan::bad_header;
    s.what = name + " offset 0: wrong magic number (not a Comb provenance log segment)";
    return s;
  }
  if (get32(b.data() + 32) != crc32c(b.data(), 32)) {
    s.problem = segment_scan::bad_header;
    s.what = name + " offset 0: segment header fails its checksum";
    return s;
  }
  if (get32(b.data() + 8) != log_version) {
    s.problem = segment_scan::bad_header;
    s.what = name + ": log format version " + std::to_string(get32(b.data() + 8))
             + ", this build reads " + std::to_string(log_version);
    return s;
  }
  if (get64(b.data() + 16) != cluster) {
    s.problem = segment_scan::foreign;
    s.what = name + ": segment belongs to cluster " + hex64(get64(b.data() + 16))
             + ", this log is cluster " + hex64(cluster);
    return s;
  }
  s.first_lsn = get64(b.data() + 24);
  if (s.first_lsn != segment_lsn(name)) {
    s.problem = segment_scan::bad_header;
    s.what = name + " offset 0: the header says the segment starts at lsn "
             + std::to_string(s.first_lsn) + ", its name says " + std::to_string(segment_lsn(name));
    return s;
  }
  uint64_t off = start > 0 ? start : segment_header_bytes;
  s.good_end = off;
  const char* d = bytes.data(); // byte `o` of the file is d[o - base]
  const uint64_t size = s.file_size;
  while (off < size) {
    auto rest = size - off;
    auto where = name + " offset " + std::to_string(off);
    if (rest < 8) {
      s.problem = segment_scan::torn_tail;
      s.what = where + ": incomplete frame header (" + std::to_string(rest) + " bytes)";
      return s;
    }
    uint32_t len = get32(d + (off - base)), crc = get32(d + (off - base) + 4);
    if (len == 0 && crc == 0
        && std::all_of(d + (off - base), d + (size - base), [](char c) { return c == 0; })) {
      s.problem = segment_scan::torn_tail;
      s.what = where + ": zero-filled tail";
      return s;
    }
    if (len > max_record_bytes || len == 0) {
      s.problem = segment_scan::corrupt;
      s.what = where + ": frame length " + std::to_string(len) + " is impossible";
      return s;
    }
    if (rest - 8 < len) {
      s.problem = segment_scan::torn_tail;
      s.what = where + ": frame of " + std::to_string(len) + " bytes is cut off after "
               + std::to_string(rest - 8);
      return s;
    }
    std::string_view body{d + (off - base) + 8, len};
    if (crc32c(body.data(), body.size()) != crc) {
      // A whole frame that fails its checksum is corruption (a flipped bit), not a torn
      // write, unless it is the last frame and ends in blocks that were never written: a
      // write cut by a power loss leaves the file's tail as zeros from a sector boundary on.
      bool last = off + 8 + len == size;
      bool unwritten = last && zero_from_sector(d, base, size, off + 8);
      s.problem = unwritten ? segment_scan::torn_tail : segment_scan::corrupt;
      s.what = where + ": record fails its checksum"
               + (unwritten ? std::string{" (last frame, its tail never written)"}
                  : last
                    ? std::string{"; the frame is whole, so this is corruption, not a torn tail"}
                    : "; " + std::to_string(size - off - 8 - len)
                        + " bytes follow, so this is not a torn tail");
      return s;
    }
    ++s.records;
    s.good_end = off + 8 + len;
    if (!fn(off, body))
      return s;
    off = s.good_end;
  }
  return s;
}

caf::error fail_at(const segment_scan& s) {
  return make_error(errc::corrupt_data, s.what);
}

// Writes one whole segment holding lsns [first, last], each record made by `make`; synced.
caf::error write_segment(const std::string& dir, uint64_t cluster, uint64_t first, uint64_t last,
                         const std::function<std::string(uint64_t)>& make) {
  auto path = dir + "/" + segment_name(first);
  std::string bytes = make_header(cluster, first);
  for (uint64_t lsn = first; lsn <= last; ++lsn) {
    auto rec = make(lsn);
    char hdr[8];
    put32(hdr, static_cast<uint32_t>(rec.size()));
    put32(hdr + 4, crc32c(rec.data(), rec.size()));
    bytes.append(hdr, 8);
    bytes.append(rec);
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return make_error(errc::storage_error, path + ": cannot create: " + std::strerror(errno));
  const char* p = bytes.data();
  size_t n = bytes.size();
  while (n > 0) {
    auto k = ::write(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0) {
      ::close(fd);
      return make_error(errc::storage_error, path + ": write failed: " + std::strerror(errno));
    }
    p += k;
    n -= static_cast<size_t>(k);
  }
  bool synced = ::fdatasync(fd) == 0;
  ::close(fd);
  if (!synced)
    return make_error(errc::storage_error, path + ": fdatasync failed");
  return {};
}

} // namespace

// -- writer -------------------------------------------------------------------

caf::expected<std::unique_ptr<log_writer>> log_writer::open(const std::string& dir,
                                                            log_options opts) {
  std::unique_ptr<log_writer> w{new log_writer};
  w->dir_ = dir;
  w->opts_ = opts;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return make_error(errc::storage_error, dir + ": cannot create: " + ec.message());
  auto cid = read_cluster_file(dir);
  if (!cid) {
    if (!list_segments(dir).empty())
      return std::move(cid.error());
    std::random_device rd;
    uint64_t id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    std::ofstream out{dir + "/" + cluster_file};
    out << "comb-log-cluster " << hex64(id) << "\n";
    if (!out)
      return make_error(errc::storage_error, dir + ": cannot write " + cluster_file);
    cid = id;
  }
  w->cluster_id_ = *cid;
  auto segs = list_segments(dir);
  // Every segment but the last must be whole; the last may have a torn tail.
  // The log starts at lsn 1, and each segment where the one before it ended.
  uint64_t expect = 1;
  for (size_t i = 0; i < segs.size(); ++i) {
    bool last = i + 1 == segs.size();
    uint64_t first = segment_lsn(segs[i]);
    if (first > expect && opts.gap_filler) {
      // The loss is accepted: the lsns get records saying so, in a segment of their own.
      auto lsns = range_text(expect, first - 1);
      if (auto err = write_segment(dir, w->cluster_id_, expect, first - 1,
                                   [&](uint64_t lsn) { return opts.gap_filler(lsn, lsns); }))
        return err;
      w->note_ += (w->note_.empty() ? "" : "; ") + lsns + " were in no segment (before " + segs[i]
                  + "); filled them with records of the loss";
    } else if (auto err = check_start(dir, segs, i, expect)) {
      return err;
    }
    expect = first;
    std::string bad_lsn;
    auto s = scan_segment(
      dir + "/" + segs[i], segs[i], w->cluster_id_, [&](uint64_t off, std::string_view body) {
        auto r = decode(body);
        if (!r || r->lsn != expect) {
          bad_lsn = segs[i] + " offset " + std::to_string(off) + ": "
                    + (r ? "lsn " + std::to_string(r->lsn) + ", expected " + std::to_string(expect)
                         : describe(r.error()));
          return false;
        }
        expect = r->lsn + 1;
        return true;
      });
    if (!bad_lsn.empty())
      return make_error(errc::corrupt_data, bad_lsn);
    if (s.problem == segment_scan::torn_tail && last) {
      // Cut the torn tail.
      auto path = dir + "/" + segs[i];
      uint64_t keep = std::max<uint64_t>(s.good_end, segment_header_bytes);
      if (s.file_size < segment_header_bytes) {
        // Not even a header: drop the segment and start it again.
        fs::remove(path, ec);
        w->dropped_ = s.file_size;
        w->note_ += (w->note_.empty() ? "" : "; ") + s.what + "; removed the empty segment";
        segs.pop_back();
        break;
      }
      if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0)
        return make_error(errc::storage_error, path + ": cannot cut the torn tail");
      w->dropped_ = s.file_size - keep;
      w->note_ += (w->note_.empty() ? "" : "; ") + s.what + "; cut " + std::to_string(w->dropped_)
                  + " bytes";
    } else if (s.problem != segment_scan::none) {
      return fail_at(s);
    }
  }
  w->next_lsn_ = expect;
  if (!segs.empty()) {
    w->segment_ = dir + "/" + segs.back();
    w->fd_ = ::open(w->segment_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (w->fd_ < 0)
      return make_error(errc::storage_error, w->segment_ + ": cannot open for append");
    w->segment_size_ = fs::file_size(w->segment_, ec);
  }
  return w;
}

log_writer::~log_writer() {
  if (fd_ >= 0) {
    // A destructor cannot return the error: say which records were lost, and why. Owners
    // that care (the recorder) sync before they let go, and hear of failures there.
    if (auto err = flush())
      std::fprintf(stderr,
                   "comb: provenance log: the last records (up to lsn %llu) may be "
                   "missing from %s: %s\n",
                   static_cast<unsigned long long>(next_lsn_ - 1), segment_.c_str(),
                   describe(err).c_str());
    ::close(fd_);
  }
}

caf::error log_writer::write_all(const char* p, size_t n) {
  while (n > 0) {
    auto k = ::write(fd_, p, n);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return make_error(errc::storage_error, segment_ + ": write failed: " + std::strerror(errno));
    }
    p += k;
    n -= static_cast<size_t>(k);
  }
  return {};
}

caf::error log_writer::open_segment(uint64_t first_lsn) {
  if (fd_ >= 0) {
    if (auto err = sync())
      return err;
    ::close(fd_);
    fd_ = -1;
  }
  segment_ = dir_ + "/" + segment_name(first_lsn);
  fd_ = ::open(segment_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0)
    return make_error(errc::storage_error, segment_ + ": cannot create");
  auto h = make_header(cluster_id_, first_lsn);
  segment_size_ = h.size();
  auto err = write_all(h.data(), h.size());
  COMB_SYNC_POINT("log.new_segment");
  return err;
}

caf::error log_writer::append(uint64_t lsn, std::string_view encoded) {
  if (lsn != next_lsn_)
    return make_error(errc::protocol_error, "log append of lsn " + std::to_string(lsn)
                                              + ", expected " + std::to_string(next_lsn_));
  if (encoded.size() > max_record_bytes)
    return make_error(errc::too_large, "log record of " + std::to_string(encoded.size())
                                         + " bytes exceeds the frame limit");
  if (fd_ < 0
      || (segment_size_ > segment_header_bytes
          && segment_size_ + 8 + encoded.size() > opts_.segment_bytes)) {
    if (fd_ >= 0)
      if (auto err = flush())
        return err;
    if (auto err = open_segment(lsn))
      return err;
  }
  char hdr[8];
  put32(hdr, static_cast<uint32_t>(encoded.size()));
  put32(hdr + 4, crc32c(encoded.data(), encoded.size()));
  buf_.append(hdr, 8);
  buf_.append(encoded);
  segment_size_ += 8 + encoded.size();
  ++next_lsn_;
  if (buf_.size() >= (1u << 20))
    return flush();
  return {};
}

caf::error log_writer::flush() {
  if (buf_.empty() || fd_ < 0)
    return {};
  if (COMB_SYNC_ARMED("log.torn_write")) {
    // A crash test: half the batch reaches the file, then the process may die there.
    auto half = buf_.size() / 2;
    if (auto err = write_all(buf_.data(), half))
      return buf_.clear(), err;
    COMB_SYNC_POINT("log.torn_write");
    buf_.erase(0, half);
  }
  auto err = write_all(buf_.data(), buf_.size());
  buf_.clear();
  return err;
}

caf::error log_writer::sync() {
  if (auto err = flush())
    return err;
  COMB_SYNC_POINT("log.before_sync");
  if (fd_ >= 0 && ::fdatasync(fd_) != 0)
    return make_error(errc::storage_error, segment_ + ": fdatasync failed");
  return {};
}

// -- reader -------------------------------------------------------------------

caf::expected<log_reader> log_reader::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return make_error(errc::not_found, dir + ": no such log folder");
  auto cid = read_cluster_file(dir);
  if (!cid)
    return std::move(cid.error());
  log_reader r;
  r.dir_ = dir;
  r.cluster_id_ = *cid;
  return r;
}

std::vector<std::string> log_reader::segments() const {
  return list_segments(dir_);
}

caf::error log_reader::for_each(uint64_t from_lsn, const std::function<bool(log_record&&)>& fn,
                                log_stats* stats) const {
  log_stats local;
  auto& st = stats ? *stats : local;
  auto segs = list_segments(dir_);
  auto& c = cursor_;
  if (!stats && !c.segs.empty() && from_lsn >= c.next_lsn && segs.size() >= c.segs.size()
      && std::equal(c.segs.begin(), c.segs.end(), segs.begin())) {
    // The same segment names up to the cursor's: resume there when its file is the one read.
    bool resumed = false;
    auto err = scan(segs, c.segs.size() - 1, c.offset, c.next_lsn, from_lsn, fn, st, resumed);
    if (resumed)
      return err;
    st = log_stats{};
  }
  bool resumed = false;
  return scan(segs, 0, 0, 1, from_lsn, fn, st, resumed);
}

// Reads segs[first..] from offset `start` of segs[first] (0: its start), where lsn `expect`
// is due. A resumed read (start > 0) that finds segs[first] another file than the cursor's, or
// shorter than `start`, reads nothing and leaves `resumed` false.
caf::error log_reader::scan(const std::vector<std::string>& segs, size_t first, uint64_t start,
                            uint64_t expect, uint64_t from_lsn,
                            const std::function<bool(log_record&&)>& fn, log_stats& st,
                            bool& resumed) const {
  auto& c = cursor_;
  bool stop = false;
  resumed = start == 0;
  for (size_t i = first; i < segs.size() && !stop; ++i) {
    uint64_t from_off = i == first ? start : 0;
    if (from_off == 0) {
      if (auto err = check_start(dir_, segs, i, expect))
        return err;
      // Skip whole segments before from_lsn (the next segment starts at or below it).
      if (i + 1 < segs.size() && segment_lsn(segs[i + 1]) <= from_lsn && from_lsn > 0) {
        expect = segment_lsn(segs[i + 1]);
        continue;
      }
    }
    caf::error problem;
    uint64_t seen = 0;
    uint64_t next_off = from_off;
    auto s = scan_segment(
      dir_ + "/" + segs[i], segs[i], cluster_id_,
      [&](uint64_t off, std::string_view body) {
        ++seen;
        auto r = decode(body);
        if (!r) {
          problem = make_error(errc::corrupt_data, segs[i] + " offset " + std::to_string(off) + ": "
                                                     + describe(r.error()));
          return false;
        }
        if (r->lsn != expect) {
          problem = make_error(errc::corrupt_data, segs[i] + " offset " + std::to_string(off)
                                                     + ": lsn " + std::to_string(r->lsn) + " where "
                                                     + std::to_string(expect) + " was expected");
          return false;
        }
        st.bytes += body.size() + 8;
        if (st.records++ == 0)
          st.first_lsn = r->lsn;
        st.last_lsn = r->lsn;
        if (r->lsn >= from_lsn && !fn(std::move(*r))) {
          // The next call from this lsn starts with this frame again.
          stop = true;
          next_off = off;
          return false;
        }
        expect = expect + 1;
        next_off = off + 8 + body.size();
        return true;
      },
      from_off, c.dev, c.ino);
    if (from_off > 0 && s.shrunk)
      return {}; // not the file the cursor is in: the caller reads the log afresh
    resumed = true;
    c.frames_read += seen;
    ++st.segments;
    // Where the next call goes on (after the last good frame, or at the one fn stopped at).
    if (s.file_size >= segment_header_bytes && s.problem != segment_scan::bad_header
        && s.problem != segment_scan::foreign) {
      c.segs.assign(segs.begin(), segs.begin() + static_cast<long>(i) + 1);
      c.offset = std::max<uint64_t>(next_off, segment_header_bytes);
      c.next_lsn = expect;
      c.dev = s.dev;
      c.ino = s.ino;
    }
    if (problem)
      return problem;
    if (s.problem == segment_scan::torn_tail && i + 1 == segs.size()) {
      st.tail_bytes = s.file_size - std::max<uint64_t>(s.good_end, 0);
      st.tail_segment = s.what;
    } else if (s.problem != segment_scan::none) {
      return fail_at(s);
    }
  }
  return {};
}

caf::expected<log_stats> verify_log(const std::string& dir) {
  auto r = log_reader::open(dir);
  if (!r)
    return std::move(r.error());
  log_stats st;
  if (auto err = r->for_each(
        0, [](log_record&&) { return true; }, &st))
    return err;
  if (st.tail_bytes > 0)
    return make_error(errc::corrupt_data, "torn tail: " + st.tail_segment + " ("
                                            + std::to_string(st.tail_bytes)
                                            + " bytes that recovery will cut)");
  return st;
}

} // namespace comb::storage
