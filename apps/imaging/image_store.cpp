// The image tables and their procedures (see image_store.hpp).
#include "apps/imaging/image_store.hpp"

#include "apps/imaging/label_store.hpp"

#include "base/base64.hpp"
#include "base/errc.hpp"
#include "base/msgpack.hpp"
#include "storage/database.hpp"
#include "storage/transaction.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

namespace comb::apps::imaging {

using nlohmann::json;
using comb::msgpack_cursor;
using comb::msgpack_type;
using comb::msgpack_value;
using runtime::arg;
using runtime::call_context;
using storage::transaction;

std::string image_key(std::string_view dataset, int64_t index) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "/%08lld", static_cast<long long>(index));
  return std::string{dataset} + buf;
}

caf::error check_name(std::string_view name, const std::string& what) {
  if (name.empty() || name.size() > 64)
    return make_error(errc::invalid_argument, what + " must be 1 to 64 characters (got "
                                                + std::to_string(name.size()) + ")");
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
      return make_error(errc::invalid_argument, what + " '" + std::string{name}
                                                  + "' may hold only letters, digits, '.', '_' "
                                                    "and '-'");
  return {};
}

namespace {

caf::expected<json> decode_row(std::string_view v, std::string_view table, std::string_view key) {
  auto row = json::from_msgpack(v, true, false);
  if (row.is_discarded() || !row.is_object())
    return make_error(errc::corrupt_data,
                      "unreadable row '" + std::string{key} + "' of " + std::string{table});
  return row;
}

// Reads an image row (MessagePack of {index, width, height, channels, label?, pixels, ...})
// straight into a stored_image, without building the row as a JSON document: a primary
// procedure reads 1,200 of them per MNIST call. Fields it does not need are skipped.
struct image_row_reader {
  stored_image& im;
  int depth = 0;
  std::string field;
  bool has_index = false, has_w = false, has_h = false, has_c = false, has_pixels = false,
       has_block = false;
  std::string error;

  bool top() const { return depth == 1; }
  bool integer(int64_t v) { return !top() || integer(field, v); }
  // A top-level member `name` holding an integer.
  bool integer(std::string_view name, int64_t v) {
    if (name == "index")
      im.index = v, has_index = true;
    else if (name == "width")
      im.width = static_cast<int>(v), has_w = true;
    else if (name == "height")
      im.height = static_cast<int>(v), has_h = true;
    else if (name == "channels")
      im.channels = static_cast<int>(v), has_c = true;
    else if (name == "label")
      im.label = static_cast<int>(v);
    else if (name == "block")
      im.block = v, has_block = true;
    else if (name == "block_count")
      im.block_count = v;
    else if (name == "offset")
      im.offset = v;
    return true;
  }
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t v) { return integer(v); }
  bool number_unsigned(json::number_unsigned_t v) {
    return integer(static_cast<int64_t>(std::min<uint64_t>(v, INT64_MAX)));
  }
  bool number_float(json::number_float_t, const std::string&) { return true; }
  bool string(std::string&) { return true; }
  bool binary(json::binary_t& b) {
    if (top() && field == "pixels") {
      im.pixels = std::move(static_cast<std::vector<uint8_t>&>(b));
      has_pixels = true;
    }
    return true;
  }
  bool start_object(std::size_t) {
    ++depth;
    return true;
  }
  bool key(std::string& k) {
    if (top())
      field = k;
    return true;
  }
  bool end_object() {
    --depth;
    return true;
  }
  bool start_array(std::size_t) {
    ++depth;
    return true;
  }
  bool end_array() {
    --depth;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    error = e.what();
    return false;
  }
};

// The common case without a parser: a MessagePack map of string keys whose top-level values
// are read with comb::msgpack_cursor (what imaging.put_images writes; nested values are
// stepped over, as the SAX reader ignores them). False for anything else (an extension value,
// a truncated row), which the SAX reader then handles and names.
bool read_flat_image_row(std::string_view v, image_row_reader& r) {
  msgpack_cursor in{v};
  uint64_t entries = 0;
  if (!in.read_map(entries))
    return false;
  r.depth = 1;
  std::string_view key;
  msgpack_value x;
  for (uint64_t e = 0; e < entries; ++e) {
    if (!in.read_str(key) || !in.next(x))
      return false;
    switch (x.type) {
    case msgpack_type::unsigned_int:
      r.integer(key, static_cast<int64_t>(std::min<uint64_t>(x.bits, INT64_MAX)));
      break;
    case msgpack_type::signed_int:
      r.integer(key, x.as_int());
      break;
    case msgpack_type::bin:
      if (key == "pixels") {
        const auto* px = reinterpret_cast<const uint8_t*>(x.bytes.data());
        r.im.pixels.assign(px, px + x.bytes.size()); // a memcpy (char iterators: a loop)
        r.has_pixels = true;
      }
      break;
    case msgpack_type::array:
    case msgpack_type::map:
      if (!in.skip_items(x))
        return false;
      break;
    case msgpack_type::ext:
      return false; // the SAX reader reads it as binary
    default: // nil, booleans, floats, strings: not fields of an image
      break;
    }
  }
  r.depth = 0;
  return in.at_end();
}

// What a reader that got to the end of a row still finds wrong with it: a field missing, or
// pixels that do not match the size.
caf::error check_image_row(const image_row_reader& r, std::string_view key) {
  if (!r.has_index || !r.has_w || !r.has_h || !r.has_c || (!r.has_pixels && !r.has_block))
    return make_error(errc::corrupt_data, "image row '" + std::string{key}
                                            + "' is malformed: a field of index, width, height, "
                                              "channels and pixels (or block) is missing");
  const auto& im = r.im;
  if (im.width < 1 || im.height < 1 || im.channels < 1 || im.width > max_stored_side
      || im.height > max_stored_side || im.channels > 3)
    return make_error(errc::corrupt_data,
                      "image row '" + std::string{key} + "': its size is out of range");
  if (r.has_pixels) {
    if (im.pixels.size() != im.pixel_bytes())
      return make_error(errc::corrupt_data,
                        "image row '" + std::string{key} + "': pixels do not match its size");
  } else if (im.block < 0 || im.block > im.index || im.block_count < 1
             || im.index - im.block >= im.block_count || im.offset < 0
             || uint64_t(im.offset) != uint64_t(im.index - im.block) * im.pixel_bytes()) {
    return make_error(errc::corrupt_data, "image row '" + std::string{key}
                                            + "': its block (" + std::to_string(im.block)
                                            + ", " + std::to_string(im.block_count)
                                            + " images, offset " + std::to_string(im.offset)
                                            + ") does not hold image " + std::to_string(im.index));
  }
  return {};
}

caf::expected<stored_image> read_image_row(std::string_view v, std::string_view key) {
  stored_image im;
  {
    image_row_reader fast{im};
    if (read_flat_image_row(v, fast) && !check_image_row(fast, key))
      return im;
  }
  // Anything else (or a damaged row): the SAX reader, which names what is wrong.
  im = stored_image{};
  image_row_reader r{im};
  bool ok = json::sax_parse(v.begin(), v.end(), &r, json::input_format_t::msgpack, true);
  if (!ok || r.depth != 0)
    return make_error(errc::corrupt_data,
                      "unreadable row '" + std::string{key} + "' of " + images_table
                        + (r.error.empty() ? std::string{} : ": " + r.error));
  if (auto err = check_image_row(r, key))
    return err;
  return im;
}

// Pixels of images kept in blocks (imaging_blocks), each block read once.
struct block_reader {
  transaction& txn;
  std::string dataset;
  int64_t first = -1;
  std::vector<char> bytes;

  // Fills im.pixels from its block (nothing to do for an image that holds its own).
  caf::error fill(stored_image& im, std::string_view key) {
    if (im.block < 0)
      return {};
    auto bkey = block_key(dataset, im.block);
    if (im.block != first) {
      first = -1;
      auto found = txn.get_blob(blocks_table, bkey, bytes);
      if (!found)
        return found.error();
      if (!*found)
        return make_error(errc::corrupt_data, "image row '" + std::string{key} + "': its block '"
                                                + bkey + "' is missing from " + blocks_table);
      first = im.block;
    }
    auto n = im.pixel_bytes();
    if (uint64_t(im.offset) + n > bytes.size())
      return make_error(errc::corrupt_data,
                        "image row '" + std::string{key} + "': its block '" + bkey + "' holds "
                          + std::to_string(bytes.size()) + " bytes, not bytes "
                          + std::to_string(im.offset) + " to " + std::to_string(im.offset + n));
    im.pixels.assign(bytes.begin() + im.offset, bytes.begin() + im.offset + int64_t(n));
    return {};
  }
};

// One image of an imaging.put_images call, checked.
struct new_image {
  json row;
  std::string pixels;
};

// Gives each image of block `block` outside [keep_from, keep_to) its own pixels in its row,
// then deletes the block: images [keep_from, keep_to) are being replaced.
caf::error dissolve_block(transaction& txn, const std::string& dataset, int64_t block,
                          int64_t keep_from, int64_t keep_to) {
  block_reader br{txn, dataset};
  caf::error bad;
  std::vector<std::pair<std::string, json>> rewrite;
  auto lo = image_key(dataset, block);
  auto err = txn.scan(images_table, lo, image_key(dataset, block + max_images_per_put),
                      [&](std::string_view k, std::string_view v) {
                        // A row that cannot be read stays as it is (its readers name it).
                        auto im = read_image_row(v, k);
                        if (!im || im->block != block)
                          return true;
                        if (im->index >= keep_from && im->index < keep_to)
                          return true;
                        if (auto e = br.fill(*im, k))
                          return bad = e, false;
                        auto row = decode_row(v, images_table, k);
                        if (!row)
                          return bad = row.error(), false;
                        for (auto* f : {"block", "block_count", "offset"})
                          row->erase(f);
                        (*row)["pixels"] = json::binary(std::move(im->pixels));
                        rewrite.emplace_back(std::string{k}, std::move(*row));
                        return true;
                      });
  if (err || bad)
    return err ? err : bad;
  for (auto& [k, row] : rewrite)
    if (auto e = txn.put_row(images_table, k, row))
      return e;
  return txn.del_blob(blocks_table, block_key(dataset, block));
}

// imaging.put_images: stores a batch of images at consecutive indexes; those of one size as
// one block.
caf::expected<json> put_images(call_context&, transaction& txn, const json& args) {
  auto dataset = arg<std::string>(args, "dataset");
  if (auto e = check_name(dataset, "imaging.put_images: dataset"))
    return e;
  auto first = arg<int64_t>(args, "first_index");
  if (first < 0 || first > 100'000'000)
    return make_error(errc::invalid_argument,
                      "imaging.put_images: first_index must be in [0, 1e8] (got "
                        + std::to_string(first) + ")");
  auto images = args.find("images");
  if (images == args.end() || !images->is_array())
    return make_error(errc::invalid_argument, "imaging.put_images: 'images' must be an array");
  if (images->empty() || images->size() > max_images_per_put)
    return make_error(errc::invalid_argument,
                      "imaging.put_images: 1 to " + std::to_string(max_images_per_put)
                        + " images a call (got " + std::to_string(images->size()) + ")");
  auto info = txn.get_row_for_update(datasets_table, dataset);
  if (!info)
    return info.error();
  json ds = *info ? **info : json{{"dataset", dataset}, {"count", 0},   {"labelled", 0},
                                  {"width", -1},        {"height", -1}, {"channels", -1}};
  // Every image checked first: a bad one stores nothing.
  std::vector<new_image> batch;
  batch.reserve(images->size());
  bool one_size = true;
  for (size_t i = 0; i < images->size(); ++i) {
    const auto& im = (*images)[i];
    auto where = "imaging.put_images: image " + std::to_string(i) + " (index "
                 + std::to_string(first + int64_t(i)) + ")";
    auto num = [&](const char* k, int64_t lo, int64_t hi) -> caf::expected<int64_t> {
      if (!im.is_object() || !im.contains(k) || !im[k].is_number_integer())
        return make_error(errc::invalid_argument, where + ": '" + k + "' must be a whole number");
      auto v = im[k].get<int64_t>();
      if (v < lo || v > hi)
        return make_error(errc::invalid_argument, where + ": '" + k + "' must be in ["
                                                    + std::to_string(lo) + ", " + std::to_string(hi)
                                                    + "] (got " + std::to_string(v) + ")");
      return v;
    };
    auto w = num("width", 1, max_stored_side);
    auto h = num("height", 1, max_stored_side);
    auto c = num("channels", 1, 3);
    if (!w || !h || !c)
      return !w ? w.error() : !h ? h.error() : c.error();
    if (*c == 2)
      return make_error(errc::invalid_argument, where + ": channels must be 1 or 3");
    if (!im.contains("pixels") || !im["pixels"].is_string())
      return make_error(errc::invalid_argument, where + ": 'pixels' must be base64 text");
    auto px = base64_decode(im["pixels"].get<std::string>());
    if (!px)
      return make_error(errc::invalid_argument, where + ": 'pixels' is not base64");
    auto want = size_t(*w) * size_t(*h) * size_t(*c);
    if (px->size() != want)
      return make_error(errc::invalid_argument, where + ": " + std::to_string(px->size())
                                                  + " pixel bytes for " + std::to_string(*w) + "x"
                                                  + std::to_string(*h) + "x" + std::to_string(*c)
                                                  + " (want " + std::to_string(want) + ")");
    json row{{"dataset", dataset},
             {"index", first + int64_t(i)},
             {"width", *w},
             {"height", *h},
             {"channels", *c}};
    if (im.contains("label") && !im["label"].is_null()) {
      auto l = num("label", 0, 100'000);
      if (!l)
        return l.error();
      row["label"] = *l;
    }
    if (auto n = im.find("name"); n != im.end() && !n->is_null()) {
      if (!n->is_string() || n->get_ref<const std::string&>().size() > 256)
        return make_error(errc::invalid_argument, where
                                                    + ": 'name' must be text of at most 256 "
                                                      "bytes");
      row["name"] = *n;
    }
    if (!batch.empty())
      one_size = one_size && batch.front().row["width"] == row["width"]
                 && batch.front().row["height"] == row["height"]
                 && batch.front().row["channels"] == row["channels"];
    batch.push_back({std::move(row), std::move(*px)});
  }
  auto n = int64_t(batch.size());
  auto next = first + n;
  // The rows replaced: labels they carried, and blocks they were part of (the images of those
  // blocks that this call does not replace get their own pixels first).
  int64_t labelled_added = 0;
  std::set<int64_t> old_blocks;
  for (int64_t i = 0; i < n; ++i) {
    auto key = image_key(dataset, first + i);
    auto old = txn.get_for_update(images_table, key);
    if (!old)
      return old.error();
    bool had_label = false;
    if (*old) {
      // A row that cannot be read is replaced as if it held no label and no block.
      if (auto im = read_image_row(**old, key)) {
        had_label = im->label.has_value();
        if (im->block >= 0)
          old_blocks.insert(im->block);
      }
    }
    labelled_added += int64_t(batch[size_t(i)].row.contains("label")) - int64_t(had_label);
  }
  for (auto b : old_blocks)
    if (auto e = dissolve_block(txn, dataset, b, first, next))
      return e;
  if (one_size) {
    // One block: the pixels one after the other, each row naming where its own are.
    auto per = batch.front().pixels.size();
    std::string block;
    block.reserve(per * batch.size());
    for (auto& b : batch)
      block += b.pixels;
    if (auto e = txn.put_blob(blocks_table, block_key(dataset, first), block))
      return e;
    for (int64_t i = 0; i < n; ++i) {
      auto& row = batch[size_t(i)].row;
      row["block"] = first;
      row["block_count"] = n;
      row["offset"] = uint64_t(i) * per;
    }
  } else {
    for (auto& b : batch)
      b.row["pixels"] = json::binary(std::vector<uint8_t>(b.pixels.begin(), b.pixels.end()));
  }
  for (int64_t i = 0; i < n; ++i) {
    const auto& row = batch[size_t(i)].row;
    if (auto e = txn.put_row(images_table, image_key(dataset, first + i), row))
      return e;
    for (auto* k : {"width", "height", "channels"}) {
      auto cur = ds[k].get<int64_t>();
      auto v = row[k].get<int64_t>();
      ds[k] = cur == -1 || cur == v ? v : 0; // 0: mixed sizes
    }
  }
  ds["count"] = std::max(ds["count"].get<int64_t>(), next);
  ds["labelled"] = ds["labelled"].get<int64_t>() + labelled_added;
  if (auto e = txn.put_row(datasets_table, dataset, ds))
    return e;
  return json{{"dataset", dataset}, {"stored", images->size()}, {"next_index", next}};
}

caf::expected<json> dataset_proc(call_context&, transaction& txn, const json& args) {
  return dataset_info(txn, arg<std::string>(args, "dataset"));
}

// imaging.labels: the images' known labels and every model's answer for them.
caf::expected<json> labels(call_context&, transaction& txn, const json& args) {
  auto dataset = arg<std::string>(args, "dataset");
  if (auto e = check_name(dataset, "imaging.labels: dataset"))
    return e;
  auto from = arg<int64_t>(args, "from");
  auto limit = arg<int64_t>(args, "limit");
  if (from < 0 || limit < 1 || limit > 1000)
    return make_error(errc::invalid_argument,
                      "imaging.labels: need from >= 0 and limit in [1, 1000]");
  json out = json::array();
  std::map<int64_t, json> by_index;
  caf::error bad;
  auto lo = image_key(dataset, from), hi = image_key(dataset, from + limit);
  auto err = txn.scan(images_table, lo, hi, [&](std::string_view k, std::string_view v) {
    auto row = decode_row(v, images_table, k);
    if (!row)
      return bad = row.error(), false;
    json e{{"index", (*row)["index"]}, {"answers", json::array()}};
    for (auto* k : {"label", "name"})
      if (row->contains(k))
        e[k] = (*row)[k];
    by_index[(*row)["index"].get<int64_t>()] = std::move(e);
    return true;
  });
  if (err || bad)
    return err ? err : bad;
  // Each image's answers, one per model (see label_store.hpp), by model.
  std::map<int64_t, std::map<std::string, json>> answers;
  err = scan_labels(txn, dataset, from, from + limit, [&](const label_row& row) {
    for (const auto& a : row.answers) {
      if (!by_index.count(a.index))
        continue;
      auto& slot = answers[a.index][row.model];
      if (!slot.is_null() && slot["call"].get<std::string>() > row.call)
        continue; // two calls written at once answered it: every reader picks the same
      slot = {{"model", row.model}, {"version", row.version}, {"label", a.label},
              {"score", a.score},   {"digest", row.digest},   {"call", row.call}};
    }
    return true;
  });
  if (err)
    return err;
  for (auto& [i, per_model] : answers)
    for (auto& [m, a] : per_model)
      by_index[i]["answers"].push_back(std::move(a));
  for (auto& [i, e] : by_index)
    out.push_back(std::move(e));
  return out;
}

// imaging.boxes: a detector's boxes for images [from, from + limit) of a dataset.
caf::expected<json> boxes(call_context&, transaction& txn, const json& args) {
  auto dataset = arg<std::string>(args, "dataset");
  auto model = arg<std::string>(args, "model");
  if (auto e = check_name(dataset, "imaging.boxes: dataset"))
    return e;
  if (auto e = check_name(model, "imaging.boxes: model"))
    return e;
  auto from = arg<int64_t>(args, "from");
  auto limit = arg<int64_t>(args, "limit");
  if (from < 0 || limit < 1 || limit > 100)
    return make_error(errc::invalid_argument,
                      "imaging.boxes: need from >= 0 and limit in [1, 100]");
  json out = json::array();
  caf::error bad;
  auto err = txn.scan(boxes_table, image_key(dataset, from), image_key(dataset, from + limit),
                      [&](std::string_view k, std::string_view v) {
                        auto row = decode_row(v, boxes_table, k);
                        if (!row)
                          return bad = row.error(), false;
                        if (row->value("model", "") == model)
                          out.push_back(std::move(*row));
                        return true;
                      });
  if (err || bad)
    return err ? err : bad;
  return out;
}

// imaging.results: accuracy of a model's answers over a dataset, per model version.
caf::expected<json> results(call_context&, transaction& txn, const json& args) {
  auto dataset = arg<std::string>(args, "dataset");
  auto model = arg<std::string>(args, "model");
  if (auto e = check_name(dataset, "imaging.results: dataset"))
    return e;
  if (auto e = check_name(model, "imaging.results: model"))
    return e;
  auto ds = dataset_info(txn, dataset);
  if (!ds)
    return ds.error();
  std::map<int64_t, int> truth;
  caf::error bad;
  auto lo = dataset + "/", hi = dataset + "0"; // '0' follows '/'
  auto err = txn.scan(images_table, lo, hi, [&](std::string_view k, std::string_view v) {
    auto row = decode_row(v, images_table, k);
    if (!row)
      return bad = row.error(), false;
    if (auto l = row->find("label"); l != row->end())
      truth[(*row)["index"].get<int64_t>()] = l->get<int>();
    return true;
  });
  if (err || bad)
    return err ? err : bad;
  struct tally {
    int64_t answered = 0, labelled = 0, correct = 0;
  };
  std::map<int64_t, tally> per_version;
  // Each image's answer by this model (should two calls written at once hold one, the
  // greater call key's, as imaging.labels picks).
  std::map<int64_t, std::pair<std::string, label_answer>> latest;
  std::map<std::string, int64_t> version_of_call;
  err = scan_labels(txn, dataset, 0, -1, [&](const label_row& row) {
    if (row.model != model)
      return true;
    version_of_call[row.call] = row.version;
    for (const auto& a : row.answers) {
      auto [i, fresh] = latest.try_emplace(a.index, row.call, a);
      if (!fresh && i->second.first < row.call)
        i->second = {row.call, a};
    }
    return true;
  });
  if (err)
    return err;
  for (auto& [index, answer] : latest) {
    auto& t = per_version[version_of_call[answer.first]];
    ++t.answered;
    if (auto i = truth.find(index); i != truth.end()) {
      ++t.labelled;
      t.correct += answer.second.label == i->second;
    }
  }
  json versions = json::array();
  for (auto& [v, t] : per_version) {
    json e{
      {"version", v}, {"answered", t.answered}, {"labelled", t.labelled}, {"correct", t.correct}};
    if (t.labelled > 0)
      e["accuracy"] = double(t.correct) / double(t.labelled);
    versions.push_back(std::move(e));
  }
  return json{{"dataset", dataset},
              {"model", model},
              {"images", (*ds)["count"]},
              {"labelled", (*ds)["labelled"]},
              {"versions", std::move(versions)}};
}

} // namespace

caf::expected<std::vector<stored_image>> read_images(transaction& txn, std::string_view dataset,
                                                     int64_t from, int64_t limit,
                                                     size_t max_bytes) {
  std::vector<stored_image> out;
  size_t bytes = 0;
  caf::error bad;
  block_reader blocks{txn, std::string{dataset}};
  auto err = txn.scan(images_table, image_key(dataset, from), image_key(dataset, from + limit),
                      [&](std::string_view k, std::string_view v) {
                        auto im = read_image_row(v, k);
                        if (!im)
                          return bad = im.error(), false;
                        if (!out.empty() && bytes + im->pixel_bytes() > max_bytes)
                          return false;
                        if (auto e = blocks.fill(*im, k))
                          return bad = e, false;
                        bytes += im->pixels.size();
                        out.push_back(std::move(*im));
                        return true;
                      });
  if (err || bad)
    return err ? err : bad;
  return out;
}

caf::expected<std::optional<stored_image>> read_image_meta(transaction& txn,
                                                           std::string_view dataset,
                                                           int64_t index) {
  auto key = image_key(dataset, index);
  auto v = txn.get(images_table, key);
  if (!v)
    return v.error();
  if (!*v)
    return std::optional<stored_image>{};
  auto im = read_image_row(**v, key);
  if (!im)
    return im.error();
  return std::optional<stored_image>{std::move(*im)};
}

caf::expected<json> dataset_info(transaction& txn, std::string_view dataset) {
  auto row = txn.get_row(datasets_table, dataset);
  if (!row)
    return row.error();
  if (!*row)
    return make_error(errc::not_found, "no images in dataset '" + std::string{dataset} + "'");
  return **row;
}

void register_image_store(runtime::procedure_registry& procs) {
  procs.add_table(images_table);
  procs.add_table(datasets_table);
  procs.add_table(labels_table);
  procs.add_table(boxes_table);
  procs.add_table(blocks_table, storage::table_kind::blobs);
  procs.add("imaging.put_images", put_images,
            {.roles = {"admin"}, .max_args_bytes = max_put_bytes});
  procs.add("imaging.dataset", dataset_proc, {.roles = {"*"}, .read_only = true});
  procs.add("imaging.labels", labels, {.roles = {"*"}, .read_only = true});
  procs.add("imaging.results", results, {.roles = {"*"}, .read_only = true});
  procs.add("imaging.boxes", boxes, {.roles = {"*"}, .read_only = true});
}

} // namespace comb::apps::imaging
