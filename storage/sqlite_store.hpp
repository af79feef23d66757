// comb::storage::open_sqlite_store: the SQLite implementation of sql_store (a file, WAL
// journal), the default analytics store. See storage/sql_store.hpp for the tables.
#pragma once

#include "storage/sql_store.hpp"

namespace comb::storage {

/// Opens (creating) the SQLite file; read_only opens an existing file for queries only.
caf::expected<std::unique_ptr<sql_store>> open_sqlite_store(const std::string& file,
                                                            bool read_only = false);

} // namespace comb::storage
