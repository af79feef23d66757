# Provenance log records, format 1: one per message between Comb actors, and one per
# stored-procedure invocation (the call and its reply) carrying the rows its transaction wrote
# (and, optionally, read). Such a record's bytes are [u64 lsn, little-endian][LogRecord as a
# flat Cap'n Proto message], so that the lsn can be set without re-encoding; on disk each record
# is framed as [u32 length][u32 CRC32C of the bytes][bytes] (see storage/provenance_log.hpp).
# Records are written in format 2 now (storage/log_record.hpp: compact, the WAL head a prefix
# of the record); logs and WAL entries of format 1 are still read.
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
  timestampNs @0 :Int64;
  kind @1 :Kind;
  sender @2 :Text;
  receiver @3 :Text;
  executionId @4 :UInt64;
  parentId @5 :UInt64;
  procedure @6 :Text;
  role @7 :Text;
  status @8 :Text;
  payload @9 :Data;      # message payload; for invocations the arguments (JSON text)
  # Invocations only:
  result @10 :Data;       # JSON text of the result, or the error text
  readOnly @11 :Bool;
  startNs @12 :Int64;
  endNs @13 :Int64;
  partition @14 :UInt32;
  changes @15 :List(RowChange);
  reads @16 :List(RowRead);
  # One byte per row change: bits 0-1 its op (1 insert, 2 update, 3 delete), bit 2 its
  # isRow. A committed invocation's record rides in its transaction's WAL entry without its
  # changes, whose rows the entry holds already as the transaction's writes: these bytes are
  # what recovery needs besides to rebuild them. In the log, when set, they match `changes`.
  rowFlags @17 :Data;

  enum Kind { invocation @0; message @1; }
}
