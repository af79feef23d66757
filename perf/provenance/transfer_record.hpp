#pragma once
// perf/provenance: a log record shaped like a bank.transfer invocation (its arguments, result
// and the three rows it writes), shared by perf_log and perf_log_tail.
#include "storage/log_record.hpp"

#include <cstdint>
#include <string>

namespace comb::perf {

/// The `i`th transfer's record (lsn left 0: the writer or the caller sets it).
inline storage::log_record transfer_record(uint64_t i) {
  storage::log_record r;
  r.kind = storage::log_record::kind_t::invocation;
  r.timestamp_ns = static_cast<int64_t>(1'700'000'000'000'000'000ull + i);
  r.sender = "gateway";
  r.receiver = "n1/p2";
  r.execution_id = 1'700'000'000'000'000'000ull + i;
  r.procedure = "bank.transfer";
  r.role = "teller";
  r.status = "ok";
  r.payload = R"({"amount":17,"from":"acct-12","id":"t)" + std::to_string(i)
              + R"(","to":"acct-99"})";
  r.result = R"({"from_balance":983,"id":"t1","to_balance":1017})";
  for (auto key : {"acct-12", "acct-99"}) {
    storage::row_change c;
    c.table = "bank.accounts";
    c.key = key;
    c.kind = storage::row_change::op::update;
    c.value = std::string("\x81\xa7"
                          "balance\xcd\x03\xd7",
                          12);
    r.changes.push_back(c);
  }
  storage::row_change t;
  t.table = "bank.transfers";
  t.key = "t" + std::to_string(i);
  t.value = std::string(48, 'x');
  r.changes.push_back(t);
  return r;
}

} // namespace comb::perf
