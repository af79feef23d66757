# Provenance log records: one per message between Comb actors, and one per stored-procedure
# invocation carrying the rows its transaction wrote (and, optionally, read). Each record is
# framed on disk as [u32 length][u32 CRC32C of the bytes][bytes] (see storage/provenance_log.hpp).
@0xc7a1e5d0b3f49a21;

struct RowChange {
  table @0 :Text;
  key @1 :Data;
  op @2 :Op;
  isRow @3 :Bool;   # value is a JSON row as MessagePack
  value @4 :Data;   # empty for delete
  enum Op { insert @0; update @1; delete @2; }
}

struct RowRead {
  table @0 :Text;
  key @1 :Data;
}

struct LogRecord {
  lsn @0 :UInt64;
  timestampNs @1 :Int64;
  kind @2 :Kind;
  sender @3 :Text;
  receiver @4 :Text;
  executionId @5 :UInt64;
  parentId @6 :UInt64;
  procedure @7 :Text;
  role @8 :Text;
  status @9 :Text;
  payload @10 :Data;      # message payload; for invocations the arguments (JSON text)
  # Invocations only:
  result @11 :Data;       # JSON text of the result, or the error text
  readOnly @12 :Bool;
  startNs @13 :Int64;
  endNs @14 :Int64;
  partition @15 :UInt32;
  changes @16 :List(RowChange);
  reads @17 :List(RowRead);

  enum Kind { invocation @0; message @1; }
}
