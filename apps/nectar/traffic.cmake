# Nectar's traffic generator (an HTTP client: cpp-httplib from Debian, with the compile flags
# its shared library was built with, from pkg-config) and the report that scores the labels of
# a run against its truth file. Included from apps/nectar/CMakeLists.txt.
find_package(PkgConfig REQUIRED)
if(NOT TARGET PkgConfig::COMB_HTTPLIB)
  pkg_check_modules(COMB_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
endif()
add_library(comb_nectar_traffic STATIC ${CMAKE_CURRENT_LIST_DIR}/traffic.cpp
                                       ${CMAKE_CURRENT_LIST_DIR}/report.cpp)
target_link_libraries(comb_nectar_traffic PUBLIC comb_anomaly comb_storage comb_base
                                                 PkgConfig::COMB_HTTPLIB)
target_compile_definitions(comb_nectar_traffic PRIVATE COMB_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
