# The provenance log (issue 3): record schema, CRC32C, segmented log, SQL store.
set(CAPNPC_SRC_PREFIX ${PROJECT_SOURCE_DIR})
set(CAPNPC_OUTPUT_DIR ${PROJECT_BINARY_DIR})
file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/schemas)
capnp_generate_cpp(COMB_LOG_CAPNP_SRCS COMB_LOG_CAPNP_HDRS
                   ${PROJECT_SOURCE_DIR}/schemas/log_record.capnp)
unset(CAPNPC_SRC_PREFIX)
unset(CAPNPC_OUTPUT_DIR)
add_library(comb_provenance STATIC
  ${CMAKE_CURRENT_LIST_DIR}/log_record.cpp
  ${CMAKE_CURRENT_LIST_DIR}/provenance_log.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sql_store.cpp
  ${COMB_LOG_CAPNP_SRCS}
)
target_link_libraries(comb_provenance PUBLIC comb_errc comb_crc32c CapnProto::capnp SQLite::SQLite3)
