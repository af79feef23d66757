// comb::runtime::piece: Cap'n Proto encoding and decoding of pieces (see piece.hpp).
#include "runtime/pieces/piece.hpp"

#include "base/errc.hpp"
#include "schemas/piece.capnp.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include <cstring>
#include <memory>

namespace comb::runtime {

std::string to_string(piece_kind k) {
  switch (k) {
  case piece_kind::infer:
    return "infer";
  case piece_kind::train:
    return "train";
  case piece_kind::load_model:
    return "load_model";
  case piece_kind::reload_model:
    return "reload_model";
  }
  return "piece_kind(" + std::to_string(static_cast<int>(k)) + ")";
}

caf::expected<piece_kind> parse_piece_kind(std::string_view s) {
  if (s == "infer")
    return piece_kind::infer;
  if (s == "train")
    return piece_kind::train;
  if (s == "load_model")
    return piece_kind::load_model;
  if (s == "reload_model")
    return piece_kind::reload_model;
  return make_error(errc::invalid_argument, "unknown task kind '" + std::string{s}
                                              + "' (infer, train, load_model, reload_model)");
}

namespace {

schema::Piece::Kind to_schema(piece_kind k) {
  switch (k) {
  case piece_kind::train:
    return schema::Piece::Kind::TRAIN;
  case piece_kind::load_model:
    return schema::Piece::Kind::LOAD_MODEL;
  case piece_kind::reload_model:
    return schema::Piece::Kind::RELOAD_MODEL;
  default:
    return schema::Piece::Kind::INFER;
  }
}

static_assert(static_cast<int>(schema::TensorSpec::DType::F32) == int(tensor_dtype::f32)
                && static_cast<int>(schema::TensorSpec::DType::U8) == int(tensor_dtype::u8)
                && static_cast<int>(schema::TensorSpec::DType::I8) == int(tensor_dtype::i8)
                && static_cast<int>(schema::TensorSpec::DType::I32) == int(tensor_dtype::i32)
                && static_cast<int>(schema::TensorSpec::DType::STR) == int(tensor_dtype::str),
              "piece.capnp TensorSpec.DType numbers tensor_dtype's values");

/// Most dimensions a tensor spec may have on the wire.
constexpr size_t max_wire_rank = 8;

// Words the header takes beyond the fixed part: the model id and the tensor specs (each a
// 4-word list element, its name and its shape).
size_t header_words(std::string_view model_id, const std::vector<tensor_spec>& tensors) {
  size_t words = 16 + (model_id.size() + 8) / 8;
  if (!tensors.empty())
    words += 1;
  for (const auto& t : tensors)
    words += 4 + (t.name.size() + 8) / 8 + t.shape.size();
  return words;
}

// Sets the header fields of `root`.
void set_header(schema::Piece::Builder root, uint64_t task_id, piece_kind kind,
                std::string_view model_id, uint32_t model_version, uint32_t piece_no,
                uint32_t piece_count, const std::vector<tensor_spec>& tensors) {
  root.setTaskId(task_id);
  root.setKind(to_schema(kind));
  root.setModelId(capnp::Text::Reader{model_id.data(), model_id.size()});
  root.setModelVersion(model_version);
  root.setPieceNo(piece_no);
  root.setPieceCount(piece_count);
  if (tensors.empty())
    return;
  auto list = root.initTensors(static_cast<unsigned>(tensors.size()));
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    auto b = list[static_cast<unsigned>(i)];
    b.setName(capnp::Text::Reader{t.name.data(), t.name.size()});
    b.setDtype(static_cast<schema::TensorSpec::DType>(t.dtype));
    auto shape = b.initShape(static_cast<unsigned>(t.shape.size()));
    for (size_t d = 0; d < t.shape.size(); ++d)
      shape.set(static_cast<unsigned>(d), t.shape[d]);
    b.setByteSize(t.bytes);
  }
}

// Encodes a piece whose payload (word-aligned) becomes a second segment: the header segment
// is built on its own and the payload is copied once, straight to its place in the flat
// array, with no zeroing of that space first. Returns an empty vector if the builder did not
// lay the message out as expected.
std::vector<char> encode_two_segments(uint64_t task_id, piece_kind kind, std::string_view model_id,
                                      uint32_t model_version, uint32_t piece_no,
                                      uint32_t piece_count, const char* data, size_t size,
                                      const std::vector<tensor_spec>& tensors) {
  capnp::MallocMessageBuilder builder{static_cast<unsigned>(header_words(model_id, tensors))};
  auto root = builder.initRoot<schema::Piece>();
  set_header(root, task_id, kind, model_id, model_version, piece_no, piece_count, tensors);
  root.adoptPayload(builder.getOrphanage().referenceExternalData(
    capnp::Data::Reader{reinterpret_cast<const kj::byte*>(data), size}));
  auto segments = builder.getSegmentsForOutput();
  if (segments.size() != 2 || reinterpret_cast<const char*>(segments[1].begin()) != data)
    return {};
  auto head_bytes = segments[0].size() * sizeof(capnp::word);
  auto body_bytes = segments[1].size() * sizeof(capnp::word);
  // Segment table: count - 1, the two sizes in words, padding to a word.
  uint32_t table[4] = {1, static_cast<uint32_t>(segments[0].size()),
                       static_cast<uint32_t>(segments[1].size()), 0};
  std::vector<char> out;
  out.reserve(sizeof(table) + head_bytes + body_bytes);
  auto* t = reinterpret_cast<const char*>(table);
  out.insert(out.end(), t, t + sizeof(table));
  auto* h = reinterpret_cast<const char*>(segments[0].begin());
  out.insert(out.end(), h, h + head_bytes);
  out.insert(out.end(), data, data + size);
  out.resize(out.size() + (body_bytes - size)); // zero padding to the word
  return out;
}

} // namespace

std::vector<char> encode_piece(uint64_t task_id, piece_kind kind, std::string_view model_id,
                               uint32_t model_version, uint32_t piece_no, uint32_t piece_count,
                               const char* data, size_t size,
                               const std::vector<tensor_spec>& tensors) {
  if (size > 0 && reinterpret_cast<uintptr_t>(data) % sizeof(capnp::word) == 0) {
    auto out = encode_two_segments(task_id, kind, model_id, model_version, piece_no, piece_count,
                                   data, size, tensors);
    if (!out.empty())
      return out;
  }
  // An empty or unaligned payload: one segment holding a copy of it.
  capnp::MallocMessageBuilder builder{static_cast<unsigned>(header_words(model_id, tensors)
                                                            + (size + 7) / 8),
                                      capnp::AllocationStrategy::FIXED_SIZE};
  auto root = builder.initRoot<schema::Piece>();
  set_header(root, task_id, kind, model_id, model_version, piece_no, piece_count, tensors);
  auto out = root.initPayload(static_cast<unsigned>(size));
  if (size > 0)
    std::memcpy(out.begin(), data, size);
  std::vector<char> flat(capnp::computeSerializedSizeInWords(builder) * sizeof(capnp::word));
  kj::ArrayOutputStream stream{
    kj::ArrayPtr<kj::byte>{reinterpret_cast<kj::byte*>(flat.data()), flat.size()}};
  capnp::writeMessage(stream, builder);
  return flat;
}

std::vector<char> encode_piece(const piece& p) {
  return encode_piece(p.task_id, p.kind, p.model_id, p.model_version, p.piece_no, p.piece_count,
                      p.payload.data(), p.payload.size(), p.tensors);
}

namespace {

// Decodes `data[0, size)`; the payload is copied out unless `owner` holds those bytes (and
// they are word-aligned), in which case `owner` becomes the payload's buffer.
caf::expected<piece> decode(const char* data, size_t size, std::vector<char>* owner) {
  if (size == 0 || size % sizeof(capnp::word) != 0)
    return make_error(errc::corrupt_data,
                      "piece message of " + std::to_string(size)
                        + " bytes is not a Cap'n Proto message (size must be a non-zero "
                          "multiple of 8)");
  // FlatArrayMessageReader needs word alignment; copy when the buffer is not aligned.
  std::unique_ptr<capnp::word[]> aligned;
  auto words = reinterpret_cast<const capnp::word*>(data);
  if (reinterpret_cast<uintptr_t>(data) % alignof(capnp::word) != 0) {
    aligned.reset(new capnp::word[size / sizeof(capnp::word)]);
    std::memcpy(aligned.get(), data, size);
    words = aligned.get();
    owner = nullptr;
  }
  try {
    capnp::ReaderOptions opts;
    opts.traversalLimitInWords = size / sizeof(capnp::word) + 64;
    capnp::FlatArrayMessageReader reader{
      kj::ArrayPtr<const capnp::word>{words, size / sizeof(capnp::word)}, opts};
    auto root = reader.getRoot<schema::Piece>();
    piece p;
    p.task_id = root.getTaskId();
    switch (root.getKind()) {
    case schema::Piece::Kind::INFER:
      p.kind = piece_kind::infer;
      break;
    case schema::Piece::Kind::TRAIN:
      p.kind = piece_kind::train;
      break;
    case schema::Piece::Kind::LOAD_MODEL:
      p.kind = piece_kind::load_model;
      break;
    case schema::Piece::Kind::RELOAD_MODEL:
      p.kind = piece_kind::reload_model;
      break;
    default:
      return make_error(errc::corrupt_data, "piece of task " + std::to_string(p.task_id)
                                              + " has unknown kind "
                                              + std::to_string(static_cast<int>(root.getKind())));
    }
    auto model = root.getModelId();
    p.model_id.assign(model.begin(), model.size());
    p.model_version = root.getModelVersion();
    p.piece_no = root.getPieceNo();
    p.piece_count = root.getPieceCount();
    if (root.hasTensors()) {
      auto tensors = root.getTensors();
      p.tensors.reserve(tensors.size());
      for (unsigned i = 0; i < tensors.size(); ++i) {
        auto t = tensors[i];
        tensor_spec s;
        auto name = t.getName();
        s.name.assign(name.begin(), name.size());
        auto dtype = static_cast<uint16_t>(t.getDtype());
        auto what = "piece " + std::to_string(p.piece_no) + " of task " + std::to_string(p.task_id)
                    + ": tensor spec " + std::to_string(i) + " '" + s.name + "'";
        if (dtype > static_cast<uint16_t>(tensor_dtype::str))
          return make_error(errc::corrupt_data,
                            what + " has unknown dtype " + std::to_string(dtype));
        s.dtype = static_cast<uint8_t>(dtype);
        auto shape = t.getShape();
        if (shape.size() > max_wire_rank)
          return make_error(errc::corrupt_data, what + " has " + std::to_string(shape.size())
                                                  + " dimensions, more than "
                                                  + std::to_string(max_wire_rank));
        for (auto d : shape)
          s.shape.push_back(d);
        s.bytes = t.getByteSize();
        p.tensors.push_back(std::move(s));
      }
    }
    auto payload = root.getPayload();
    auto* begin = reinterpret_cast<const char*>(payload.begin());
    if (owner) {
      // The reader bounds-checked the payload against the message, i.e. against `owner`.
      auto offset = static_cast<size_t>(begin - data);
      p.payload = payload_buffer{std::move(*owner), offset, payload.size()};
    } else {
      p.payload.assign(begin, begin + payload.size());
    }
    return p;
  } catch (const kj::Exception& e) {
    return make_error(errc::corrupt_data,
                      "piece message does not decode: " + std::string{e.getDescription().cStr()});
  }
}

} // namespace

caf::expected<piece> decode_piece(const char* data, size_t size) {
  return decode(data, size, nullptr);
}

caf::expected<piece> decode_piece(std::vector<char>&& bytes) {
  return decode(bytes.data(), bytes.size(), &bytes);
}

} // namespace comb::runtime
