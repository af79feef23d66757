// comb::anomaly trainer: trains a detector's TextCNN on encoded requests with Adam, in
// shuffled length-bucketed batches, with early stopping on a validation split (the weights
// of the best validation epoch are kept); train_detector fits a whole detector (tokenizer and
// TextCNN) on a data set. Seeded: the same inputs and seed give the same model. Shows
// progress (epoch, batch, loss, ETA) on a terminal. Single-threaded driver; the kernels
// parallelise inside each step.
#pragma once

#include "apps/anomaly/calibration.hpp"
#include <optional>

#include "apps/anomaly/binary_metrics.hpp"
#include "apps/anomaly/csic_dataset.hpp"
#include "apps/anomaly/detector.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <vector>

namespace comb::anomaly {

struct train_options {
  int max_epochs = 5;
  /// Small training sets get more epochs: the epoch limit is raised so that at least this
  /// many optimiser steps can run (early stopping still ends training).
  int min_steps = 0;
  int batch = 64;
  /// Stop after this many epochs without a better validation loss (or, with lr_drops left,
  /// lower the learning rate instead).
  int patience = 1;
  /// Patience once the learning rate has been lowered (for the later drops and the stop);
  /// 0 = `patience`. At a lower rate the validation loss falls more slowly and ties more
  /// often, so one epoch without a better loss is weaker evidence of a plateau.
  int patience_after_drop = 0;
  /// Learning rate on a plateau: when `patience` epochs pass without a better validation
  /// loss and fewer than `lr_drops` drops were made, training goes back to the best epoch's
  /// weights (Adam's moments start again), multiplies the learning rate by `lr_decay` and
  /// goes on; after the last drop a plateau stops it. lr_drops 0 = plain early stopping.
  /// The saved model keeps the rate it was created with.
  int lr_drops = 0;
  float lr_decay = 0.5f;
  uint64_t seed = 1;
  /// Progress output (nullptr = quiet); on a terminal one line is rewritten in place.
  std::ostream* progress = nullptr;
  /// Label printed before the progress ("fold 2/5").
  std::string label;
  /// Each row of a batch trained at its own length (padding masked out of its output and
  /// gradients, as scoring does), so that a request's training step does not depend on its
  /// batch mates; false: rows padded to the batch's longest are trained as they are padded.
  bool row_lengths = true;
  /// Loss weight of each request augmentation added to training (payload lines, another
  /// site's requests), against 1 for the data set's own: below 1 they count less, so that CSIC's own boundary is not
  /// traded for the injected families. 1 = plain mean loss.
  float augmented_weight = 1.0f;
  /// Measurements only: called at each plateau that lowers the learning rate, once the best
  /// epoch's weights are back in the detector, with the number of drops made before it. The
  /// detector then holds the model that training with that many drops would have kept (the
  /// same seed and an epoch limit it did not reach), so one run measures each schedule. An
  /// error stops training.
  std::function<caf::error(int drops_before)> on_plateau;
};

struct train_result {
  int epochs_run = 0;
  int best_epoch = 0;
  double best_validation_loss = 0;
  std::vector<double> epoch_seconds;
  std::vector<double> train_loss;
  std::vector<double> validation_loss;
  /// The learning rate of each epoch run.
  std::vector<double> learning_rate;
  /// Plateaus met with a drop of the learning rate (train_options::lr_drops).
  int lr_drops = 0;
};

/// Training batches of one epoch: indices shuffled with `seed`, then sorted by length
/// within windows of 32 batches so that a batch pads little, then the batches shuffled.
std::vector<std::vector<size_t>> epoch_batches(const std::vector<std::vector<int32_t>>& seqs,
                                               const std::vector<size_t>& train, int batch,
                                               uint64_t seed);

/// Loss weights for train_model when the first `n_own` of `n` sequences are a data set's
/// own and the rest were added by augmentation: 1 and `augmented_weight`; empty (all equal)
/// when the weight is 1 or nothing was added.
std::vector<float> augmented_weights(size_t n, size_t n_own, float augmented_weight);

/// Trains `d.model()` on seqs[train] with labels, early-stopping on seqs[validation]
/// (no early stopping when `validation` is empty). `weights` (one per seq, or empty): the
/// loss weight of each sequence. Errors come from the model.
caf::expected<train_result> train_model(detector& d, const std::vector<std::vector<int32_t>>& seqs,
                                        const std::vector<int>& labels,
                                        const std::vector<size_t>& train,
                                        const std::vector<size_t>& validation,
                                        const train_options& opts,
                                        const std::vector<float>& weights = {});

/// A detector fitted by train_detector, with how it went.
struct trained_detector {
  detector model;
  train_result training;
  double tokenizer_seconds = 0;
  /// The kept weights on the validation share (threshold 0.5).
  binary_metrics validation;
  size_t validation_size = 0;
  /// Requests added to training from the payload sets (augment_options).
  size_t augmented = 0;
  /// The threshold's calibration, when payload sets were given.
  std::optional<calibration_result> calibration;
};

/// Fits a detector on all of `ds`: the requests' text (cfg.text), a BBPE tokenizer of
/// cfg.vocab_size ids on all of it, and the TextCNN (cfg.model) trained by train_model with
/// early stopping on `validation_share` of each label (split seeded with opts.seed + 17).
/// Writes a line about the tokenizer to opts.progress. With `aug.payloads`, the training
/// part also gets augmentation(normal requests of the training part, aug), and the saved
/// threshold is calibrated (calibrate, at most `target_fp` false positives: 0.6%, a margin
/// under the 1% goal for traffic calibration did not see) on the
/// calibration-use benign values put into the validation part's normal requests. Errors come
/// from the tokenizer, the model and the payload sets.
/// `site`: benign requests of another site (Nectar's benign sessions), used only to calibrate.
/// The detector's config records the families held out of training (aug.holdout).
caf::expected<trained_detector> train_detector(const csic_dataset& ds, const detector_config& cfg,
                                               double validation_share, const train_options& opts,
                                               const augment_options& aug = {},
                                               double target_fp = 0.006,
                                               const std::vector<const http_request*>& site = {});

/// The normal requests of the validation part that train_detector, given the same data,
/// `validation_share` and `seed` (train_options::seed), leaves out of training: those
/// calibration scores, so that a model can be calibrated again later (`comb anomaly
/// calibrate`).
std::vector<const http_request*> held_out_normal(const csic_dataset& ds, double validation_share,
                                                 uint64_t seed);

} // namespace comb::anomaly
