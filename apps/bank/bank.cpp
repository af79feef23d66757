// bank: accounts and transfers written as stored procedures. Each call runs in one transaction
// on the state actor of the partition its "from"/"account" argument hashes to; a transfer whose
// accounts live on two partitions is still one atomic transaction (see actors/state_actor.hpp).
#include "apps/bank/bank.hpp"

#include "base/errc.hpp"
#include "storage/transaction.hpp"

#include <cstdint>
#include <string>

namespace comb::apps::bank {

using nlohmann::json;
using runtime::arg;
using runtime::call_context;
using storage::transaction;

namespace {

// An amount of money in whole units (cents): a JSON integer in [min, INT64_MAX]. A fraction
// (1.5), an exponent form (1e30) or anything out of range is refused, never rounded.
caf::expected<int64_t> amount_arg(const json& args, const char* proc, const char* name,
                                  int64_t min) {
  // The message is built only for a refusal: a transfer's hot path allocates nothing here.
  auto where = [&] { return std::string{proc} + ": argument '" + name + "'"; };
  auto i = args.is_object() ? args.find(name) : args.end();
  if (!args.is_object() || i == args.end())
    return make_error(errc::invalid_argument, where() + " is missing");
  const auto& v = *i;
  if (!v.is_number_integer())
    return make_error(errc::invalid_argument,
                      where() + " must be a whole number (got " + v.dump() + ")");
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX})
    return make_error(errc::invalid_argument, where() + " is larger than "
                                                + std::to_string(INT64_MAX) + " (got " + v.dump()
                                                + ")");
  auto x = v.get<int64_t>();
  if (x < min)
    return make_error(errc::invalid_argument,
                      where() + " must be >= " + std::to_string(min) + " (got " + v.dump() + ")");
  return x;
}

caf::expected<json> open(call_context&, transaction& txn, const json& args) {
  auto id = arg<std::string>(args, "account");
  auto checked = amount_arg(args, "bank.open", "balance", /*min=*/0);
  if (!checked)
    return std::move(checked.error());
  auto balance = *checked;
  if (auto err = txn.insert_row("bank.accounts", id, json{{"balance", balance}}))
    return err;
  return json{{"account", id}, {"balance", balance}};
}

caf::expected<json> transfer(call_context& ctx, transaction& txn, const json& args) {
  auto id = arg<std::string>(args, "id"); // the client's transfer id: applied at most once
  auto from = arg<std::string>(args, "from");
  auto to = arg<std::string>(args, "to");
  auto checked = amount_arg(args, "bank.transfer", "amount", /*min=*/1);
  if (!checked)
    return std::move(checked.error());
  auto amount = *checked;
  if (from == to)
    return make_error(errc::invalid_argument, "bank.transfer: need from != to");
  auto a = txn.get_row_for_update("bank.accounts", from);
  auto b = txn.get_row_for_update("bank.accounts", to);
  if (!a || !b)
    return a ? b.error() : a.error();
  if (!*a || !*b)
    return make_error(errc::not_found, "bank.transfer: no account '" + (*a ? to : from) + "'");
  auto fa = (**a)["balance"].get<int64_t>(), fb = (**b)["balance"].get<int64_t>();
  if (fa < amount)
    return make_error(errc::procedure_failed, "bank.transfer: insufficient funds in " + from);
  int64_t to_balance = 0;
  if (__builtin_add_overflow(fb, amount, &to_balance))
    return make_error(errc::procedure_failed, "bank.transfer: the balance of " + to
                                                + " would exceed " + std::to_string(INT64_MAX));
  json record = json::object();
  record["from"] = from;
  record["to"] = to;
  record["amount"] = amount;
  record["exec"] = ctx.execution_id;
  if (auto err = txn.insert_row("bank.transfers", id, record))
    return err; // already_exists: a retried transfer is not applied twice
  // The rows read are written back with their new balance (any other field kept as it was):
  // no new JSON object is built (and destroyed) per row.
  (**a)["balance"] = fa - amount;
  (**b)["balance"] = to_balance;
  if (auto err = txn.put_row("bank.accounts", from, **a))
    return err;
  if (auto err = txn.put_row("bank.accounts", to, **b))
    return err;
  json result = json::object();
  result["id"] = std::move(id);
  result["from_balance"] = fa - amount;
  result["to_balance"] = to_balance;
  return result;
}

caf::expected<json> balance(call_context&, transaction& txn, const json& args) {
  auto id = arg<std::string>(args, "account");
  auto row = txn.get_row("bank.accounts", id);
  if (!row)
    return row.error();
  if (!*row)
    return make_error(errc::not_found, "bank.balance: no account '" + id + "'");
  return json{{"account", id}, {"balance", (**row)["balance"]}};
}

// Sums every account and counts transfers: one consistent snapshot across all partitions.
caf::expected<json> total(call_context&, transaction& txn, const json&) {
  int64_t sum = 0, accounts = 0, transfers = 0;
  caf::error bad;
  auto err = txn.scan("bank.accounts", "", "", [&](std::string_view, std::string_view v) {
    auto row = json::from_msgpack(v, true, false);
    if (row.is_discarded() || !row.contains("balance")) {
      bad = make_error(errc::corrupt_data, "bank.total: unreadable account row");
      return false;
    }
    if (__builtin_add_overflow(sum, row["balance"].get<int64_t>(), &sum)) {
      bad = make_error(errc::too_large,
                       "bank.total: the sum of the balances exceeds " + std::to_string(INT64_MAX));
      return false;
    }
    ++accounts;
    return true;
  });
  if (err || bad)
    return err ? err : bad;
  if (auto e = txn.scan("bank.transfers", "", "", [&](auto, auto) { return ++transfers, true; }))
    return e;
  return json{{"total", sum}, {"accounts", accounts}, {"transfers", transfers}};
}

} // namespace

void register_bank(runtime::procedure_registry& procs) {
  procs.add_partitioned_table("bank.accounts"); // keyed by account id, routed by it
  procs.add_table("bank.transfers");
  procs.add("bank.open", open, {.roles = {"admin"}, .partition_by = "account"});
  procs.add("bank.transfer", transfer, {.roles = {"admin", "teller"}, .partition_by = "from"});
  procs.add("bank.balance", balance,
            {.roles = {"*"}, .partition_by = "account", .read_only = true});
  procs.add("bank.total", total, {.roles = {"admin", "auditor"}, .read_only = true});
}

} // namespace comb::apps::bank
