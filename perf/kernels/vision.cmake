# perf_vision: MobileNetV2 / detector / fused GEMM benchmarks (kernels-vision). Included
# from perf/kernels/CMakeLists.txt.
add_executable(perf_vision ${CMAKE_CURRENT_LIST_DIR}/perf_vision.cpp)
target_link_libraries(perf_vision PRIVATE comb_vision ${OPENBLAS_LIB})
target_include_directories(perf_vision PRIVATE /usr/include/x86_64-linux-gnu/openblas-pthread)
target_compile_definitions(perf_vision PRIVATE COMB_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
