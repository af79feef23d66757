# Piece: one message of Figure 2 of the paper, sent by a function actor to the compute
# process. A task's payload is split into pieces of at most 1 MiB (comb::runtime::
# max_piece_payload); the compute actor pools pieces by taskId until all pieceCount pieces
# of the task are there. Encoded and decoded by runtime/piece.{hpp,cpp}.
@0xf077651b48577e84;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("comb::schema");

struct Piece {
  # Which task the piece belongs to. Many function actors may contribute pieces to one task.
  taskId @0 :UInt64;
  # What the compute process does with the task once it is whole.
  kind @1 :Kind;
  # The model that runs the task (a built-in such as "checksum", or a loaded model).
  modelId @2 :Text;
  # Position of this piece in the task, 0 <= pieceNo < pieceCount.
  pieceNo @3 :UInt32;
  # Number of pieces of the task; the same in every piece of the task.
  pieceCount @4 :UInt32;
  # At most 1 MiB of the task's payload.
  payload @5 :Data;
  # Model version: for loadModel and reloadModel the version being loaded; for infer and train 0 means the
  # version active when the task's first piece arrives, otherwise that exact version.
  modelVersion @6 :UInt32;
  # The task's typed input tensors (comb::runtime::tensor_spec), carried by piece 0 of an
  # infer or train task only: the task's payload is their bytes one after another, in this
  # order. Empty: the payload is opaque bytes, as for built-in tasks and loadModel. Specs on
  # any other piece are a protocol error.
  tensors @7 :List(TensorSpec);

  enum Kind {
    infer @0;
    train @1;
    loadModel @2;
    # Like loadModel, without making the version the active one: the outbox dispatcher
    # loads a version again that the compute process lost (it restarted, or unloaded a
    # superseded version) for tasks pinned to it.
    reloadModel @3;
  }
}

struct TensorSpec {
  # One typed tensor of a task's payload (runtime/pieces/tensor_spec.hpp).
  name @0 :Text;
  # Element type; the numbers are comb::runtime::tensor_dtype's.
  dtype @1 :DType;
  # Dimensions, row-major (at most 8; none for a scalar).
  shape @2 :List(Int64);
  # Bytes of the tensor in the payload (numel x element size, or the strings' bytes for str).
  byteSize @3 :UInt64;

  enum DType {
    f32 @0;
    u8 @1;
    i8 @2;
    i32 @3;
    # Strings, each a little-endian u32 length then its bytes.
    str @4;
  }
}
