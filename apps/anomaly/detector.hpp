// comb::anomaly::detector: the HTTP anomaly detector as one unit: how a request becomes text
// (text_options), the BBPE tokenizer, and the TextCNN with the number of tokens it sees (its
// sequence length). Saved as one safetensors file: the weights as tensors with the model's
// textcnn.* keys (shape, sequence length) in the header's __metadata__, beside the tokenizer
// and the text settings ("comb.kind" = "anomaly-detector", "comb.tokenizer",
// "comb.config"), so a compute process loads it from the model store as it loads any model.
// Owned by its user; scoring mutates scratch buffers, so one detector per thread.
#pragma once

#include "apps/anomaly/bbpe_tokenizer.hpp"
#include "apps/anomaly/http_request.hpp"
#include "apps/anomaly/textcnn_classifier.hpp"

#include <caf/expected.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace comb::anomaly {

/// Everything about the detector except learned numbers.
struct detector_config {
  /// BBPE vocabulary size (padding + 256 bytes + merges).
  size_t vocab_size = 8192;
  /// A request's text is cut after this many tokens: the model's sequence length, one value
  /// held by the model (model.seq_len, saved as textcnn.seq_len). Set the length there; the
  /// detector's constructor fills this in from the model. A nonzero value given to the
  /// constructor replaces the model's (clamped to the widest kernel..2^20): files written
  /// before the model held the length carry it here.
  size_t max_tokens = 0;
  text_options text;
  /// The model's shape and engine; the constructor copies them from the model.
  textcnn_options model;
  /// Probability at or above which a request is called anomalous: chosen by calibration on
  /// benign traffic the model was not trained on (apps/anomaly/calibration.hpp), saved with
  /// the model; 0.5 for files written before it was saved.
  float threshold = 0.5f;
  /// How the threshold was chosen, one line ("" = not calibrated).
  std::string calibration;
  /// Attack families of the payload sets left out of training (augment_options::holdout),
  /// saved with the model so that `comb anomaly eval --ood` can report them apart: recall
  /// on families never trained on is what says how the model transfers. Empty when none
  /// were (and in files written before it was saved).
  std::vector<std::string> held_out;

  /// "key=value" lines of the settings the model does not hold (vocab_size, text.*).
  std::string serialize() const;
  /// Reads serialize()'s lines, and those of files written before the model held its shape
  /// and sequence length (max_tokens, model.*). max_tokens is 0 when the text has none.
  /// Errors: errc::bad_model naming the key or value that does not parse.
  static caf::expected<detector_config> deserialize(std::string_view text);
};

class detector {
public:
  /// A nonzero `cfg.max_tokens` becomes the model's sequence length; config().max_tokens is
  /// the model's sequence length (see detector_config).
  detector(bbpe_tokenizer tok, textcnn_classifier model, detector_config cfg);

  /// Token ids of one request's text, at most max_tokens, never empty (an empty text is
  /// one token of byte ' ').
  std::vector<int32_t> encode_text(std::string_view text) const;

  /// Probability of "anomalous" for each raw request. A request that does not parse as HTTP
  /// is scored on its raw bytes (its `parsed` entry is false); empty input scores as one
  /// space. Runs in batches of at most `batch` (score_encoded); a request scores the same
  /// alone as among others.
  caf::expected<std::vector<float>> score_raw(const std::vector<std::string_view>& raw,
                                              std::vector<bool>* parsed = nullptr, int batch = 256);

  /// Probability of "anomalous" for pre-encoded sequences, in batches of at most `batch`. A
  /// sequence's score depends on it alone, never on the others: the fused engine reads only
  /// each row's own tokens (padded up to the widest kernel at most), and with the "kernels"
  /// engine a batch holds sequences of one length.
  caf::expected<std::vector<float>> score_encoded(const std::vector<std::vector<int32_t>>& seqs,
                                                  int batch = 256);

  /// The one-file form (safetensors bytes). Files written before the model held the
  /// sequence length keep loading: their comb.config max_tokens is the sequence length (it
  /// is what they cut requests at; a textcnn.seq_len beside it was never used).
  caf::expected<std::string> serialize() const;
  /// With `on`, the TextCNN runs on that backend (see textcnn_classifier::load).
  static caf::expected<detector> deserialize(const std::string& bytes,
                                             std::shared_ptr<kernels::backend> on = nullptr);

  /// Writes/reads the one-file form. Errors name the path.
  caf::error save(const std::string& path) const;
  static caf::expected<detector> load(const std::string& path);

  const bbpe_tokenizer& tokenizer() const { return tokenizer_; }
  textcnn_classifier& model() { return model_; }
  const detector_config& config() const { return config_; }
  /// Sets the saved threshold and how it was chosen (calibration).
  void set_threshold(float t, std::string how) {
    config_.threshold = t;
    config_.calibration = std::move(how);
  }

private:
  bbpe_tokenizer tokenizer_;
  textcnn_classifier model_;
  detector_config config_;
};

/// One request of a stream scored by score_http_stream.
struct scored_request {
  /// Probability of "anomalous".
  float probability = 0;
  /// False when the unit did not parse as HTTP and was scored on its raw bytes.
  bool parsed = false;
  /// Its first line (request line), at most 100 bytes, bytes outside printable ASCII as '?'.
  std::string first_line;
};

/// The first line of a request (scored_request::first_line's form).
std::string request_first_line(std::string_view unit);

/// Splits `stream` into requests (split_http_stream) and scores them with `d` in batches of
/// `batch`. Empty or blank input gives no requests. Errors come from the model.
caf::expected<std::vector<scored_request>> score_http_stream(detector& d, std::string_view stream,
                                                             int batch = 256);

/// Pads `seqs[idx[b]]` for b in [begin, end) into a (end-begin) x len batch, len = the
/// longest sequence there (at least `min_len`, so every convolution has a window).
int pad_batch(const std::vector<std::vector<int32_t>>& seqs, const std::vector<size_t>& idx,
              size_t begin, size_t end, int min_len, std::vector<int32_t>& out);

} // namespace comb::anomaly
