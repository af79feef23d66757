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
  # Model version: for loadModel the version being loaded; for infer and train 0 means the
  # version active when the task's first piece arrives, otherwise that exact version.
  modelVersion @6 :UInt32;

  enum Kind {
    infer @0;
    train @1;
    loadModel @2;
  }
}
