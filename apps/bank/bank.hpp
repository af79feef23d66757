// The bank example app: accounts and transfers as stored procedures. register_bank() adds its
// procedures and tables to a registry; the procedures are plain functions over a transaction.
#pragma once

#include "runtime/procedure_registry.hpp"

namespace comb::apps::bank {

/// Registers bank.open, bank.transfer, bank.balance, bank.total and bank.audit.
void register_bank(runtime::procedure_registry& procs);

} // namespace comb::apps::bank
