# compute (issue 4): the compute actor of `comb compute` and the function actors that feed it.
# Included at the end of actors/CMakeLists.txt.
add_library(comb_compute STATIC
  ${CMAKE_CURRENT_LIST_DIR}/compute_actor.cpp
  ${CMAKE_CURRENT_LIST_DIR}/function_actor.cpp
)
target_link_libraries(comb_compute PUBLIC comb_pieces comb_caf)

# Sends committed outbox calls to function actors and results to result procedures.
add_library(comb_outbox_dispatcher STATIC ${CMAKE_CURRENT_LIST_DIR}/outbox_dispatcher.cpp)
target_link_libraries(comb_outbox_dispatcher PUBLIC comb_compute comb_outbox comb_runtime_core)
