// comb::anomaly::detector: the HTTP anomaly detector as one unit: how a request becomes text
// (text_options), the BBPE tokenizer, the maximum number of tokens, and the TextCNN. Saved as
// one safetensors file: the weights as tensors; the tokenizer and the configuration in the
// header's __metadata__ ("comb.kind" = "anomaly-detector", "comb.tokenizer",
// "comb.config"), so a compute process loads it from the model store as it loads any model.
// Owned by its user; scoring mutates scratch buffers, so one detector per thread.
#pragma once

#include "apps/anomaly/bbpe_tokenizer.hpp"
#include "apps/anomaly/http_request.hpp"
#include "apps/anomaly/textcnn_classifier.hpp"

#include <caf/expected.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace comb::anomaly {

/// Everything about the detector except learned numbers.
struct detector_config {
  /// BBPE vocabulary size (padding + 256 bytes + merges).
  size_t vocab_size = 8192;
  /// A request's text is cut after this many tokens (the model sees at most this many).
  size_t max_tokens = 512;
  text_options text;
  textcnn_options model;

  /// "key=value" lines.
  std::string serialize() const;
  /// Errors: errc::bad_model naming the key or value that does not parse.
  static caf::expected<detector_config> deserialize(std::string_view text);
};

class detector {
public:
  detector(bbpe_tokenizer tok, textcnn_classifier model, detector_config cfg);

  /// Token ids of one request's text, at most max_tokens, never empty (an empty text is
  /// one token of byte ' ').
  std::vector<int32_t> encode_text(std::string_view text) const;

  /// Probability of "anomalous" for each raw request. A request that does not parse as HTTP
  /// is scored on its raw bytes (its `parsed` entry is false); empty input scores as one
  /// space. Runs in batches of `batch`.
  caf::expected<std::vector<float>> score_raw(const std::vector<std::string_view>& raw,
                                              std::vector<bool>* parsed = nullptr,
                                              int batch = 256);

  /// Probability of "anomalous" for pre-encoded sequences.
  caf::expected<std::vector<float>> score_encoded(const std::vector<std::vector<int32_t>>& seqs,
                                                  int batch = 256);

  /// The one-file form (safetensors bytes).
  caf::expected<std::string> serialize() const;
  static caf::expected<detector> deserialize(const std::string& bytes);

  /// Writes/reads the one-file form. Errors name the path.
  caf::error save(const std::string& path) const;
  static caf::expected<detector> load(const std::string& path);

  const bbpe_tokenizer& tokenizer() const {
    return tokenizer_;
  }
  textcnn_classifier& model() {
    return model_;
  }
  const detector_config& config() const {
    return config_;
  }

private:
  bbpe_tokenizer tokenizer_;
  textcnn_classifier model_;
  detector_config config_;
};

/// Pads `seqs[idx[b]]` for b in [begin, end) into a (end-begin) x len batch, len = the
/// longest sequence there (at least `min_len`, so every convolution has a window).
int pad_batch(const std::vector<std::vector<int32_t>>& seqs, const std::vector<size_t>& idx,
              size_t begin, size_t end, int min_len, std::vector<int32_t>& out);

} // namespace comb::anomaly
