# pieces (issue 4): Cap'n Proto pieces, the piece pool, built-in compute tasks, model digests.
# Included at the end of runtime/CMakeLists.txt.
find_package(OpenSSL REQUIRED)
set(CAPNPC_SRC_PREFIX ${PROJECT_SOURCE_DIR})
set(CAPNPC_OUTPUT_DIR ${PROJECT_BINARY_DIR})
file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/schemas)
capnp_generate_cpp(COMB_PIECE_CAPNP_SRCS COMB_PIECE_CAPNP_HDRS
                   ${PROJECT_SOURCE_DIR}/schemas/piece.capnp)
unset(CAPNPC_SRC_PREFIX)
unset(CAPNPC_OUTPUT_DIR)
add_library(comb_pieces STATIC
  ${CMAKE_CURRENT_LIST_DIR}/piece.cpp
  ${CMAKE_CURRENT_LIST_DIR}/piece_pool.cpp
  ${CMAKE_CURRENT_LIST_DIR}/builtin_tasks.cpp
  ${CMAKE_CURRENT_LIST_DIR}/model_digest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/transfer_tuning.cpp
  ${COMB_PIECE_CAPNP_SRCS}
)
target_link_libraries(comb_pieces PUBLIC comb_errc CapnProto::capnp OpenSSL::Crypto)

# The transactional outbox: function calls recorded in the caller's transaction.
add_library(comb_outbox STATIC ${CMAKE_CURRENT_LIST_DIR}/outbox.cpp)
target_link_libraries(comb_outbox PUBLIC comb_pieces comb_runtime_core comb_storage)

# The model store: models as 1 MiB chunks with versions and digests, as stored procedures.
add_library(comb_model_store STATIC ${CMAKE_CURRENT_LIST_DIR}/model_store.cpp
                                    ${CMAKE_CURRENT_LIST_DIR}/base64.cpp)
target_link_libraries(comb_model_store PUBLIC comb_outbox)
