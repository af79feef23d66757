// comb::storage::open_pg_store: the PostgreSQL implementation of sql_store, through libpq:
// the same tables and queries as the SQLite store (storage/sql_store.hpp), for a team that
// wants its provenance in a database server. The spool's statements are sent in batches
// (one round trip for many rows) and its rows through COPY (a temporary table, then INSERT ...
// SELECT ... ON CONFLICT, so that a row already there is skipped or replaced as the SQL form
// would; COMB_PG_COPY=0 turns COPY off), inside one transaction per pass, which first locks
// spool_state's row, so two spoolers of one database take turns. Text is sent as UTF-8
// literals with standard_conforming_strings on; queries take ?1, ?2, ... like SQLite's
// (sent as $1, $2, ...). Not thread-safe (one connection).
#pragma once

#include "storage/sql_store.hpp"

namespace comb::storage {

/// Connects to `url` (postgresql://user[:password]@host:port/db[?options], as libpq takes
/// it; 10 s connect timeout unless the URL sets one) and creates the tables when missing;
/// read_only runs every query in a READ ONLY transaction that is rolled back.
caf::expected<std::unique_ptr<sql_store>> open_pg_store(const std::string& url,
                                                        bool read_only = false);

} // namespace comb::storage
