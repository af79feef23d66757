// comb::apps::imaging calls: the procedures that send stored images through the outbox to
// the compute process and write what comes back. A primary procedure reads images, pins the
// model version, and in its own transaction enqueues one function call whose payload is
// typed tensors (runtime/pieces/outbox.hpp) and records the call in imaging_calls; the
// call's result procedure writes the labels of its images as one row (imaging_labels, see
// label_store.hpp) or one row of boxes per image (imaging_boxes), naming the model version,
// its digest and the call, or stores a trained model as the next version with
// its provenance (which rows, from which version, the losses) and activates it. Stateless
// functions; thread-safe.
#pragma once

#include "apps/imaging/image_store.hpp"
#include "runtime/procedure_registry.hpp"

#include <cstddef>
#include <cstdint>

namespace comb::apps::imaging {

/// One row per call: {kind, dataset, model, version, images, state ("pending", "done",
/// "failed"), error?, ...}, keyed by the call's outbox key.
constexpr const char* calls_table = "imaging_calls";

/// The largest input of one classify or detect call: max_infer_bytes and max_infer_images
/// (image_store.hpp).
/// Largest input payload of one train call (all of MNIST's 60,000 training images).
constexpr size_t max_train_bytes = size_t{48} << 20;

/// Registers, for admin:
///   imaging.classify {dataset, model, from, limit?} -> {call, images, next, version, kind,
///     input} (no call, images 0, when no image is left); result procedure imaging.classified;
///     input "block" when the call's images are one stored block, sent as it is stored
///     (image_store.hpp), "rows" when their pixels were read and packed
///   imaging.detect {dataset, model, from, limit?} -> the same; result imaging.detected
///   imaging.train {dataset, model, epochs, batch, lr, seed?, from?, limit?}
///     -> {call, trained_from, rows, from, to}; result imaging.trained
///   imaging.call {call} -> its imaging_calls row (any role)
///   imaging.pending {model} -> the model's calls without a result yet (any role)
void register_calls(runtime::procedure_registry& procs);

} // namespace comb::apps::imaging
