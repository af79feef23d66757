# Vision part of kernels/: TFLite import, BMP images, NHWC ops (fused GEMM, depthwise and
# dense convolutions), MobileNetV2 and the CenterNet-style detector. Included from
# kernels/CMakeLists.txt.
add_library(comb_vision STATIC
  ${CMAKE_CURRENT_LIST_DIR}/tflite_reader.cpp
  ${CMAKE_CURRENT_LIST_DIR}/image.cpp
  ${CMAKE_CURRENT_LIST_DIR}/detail/task_pool.cpp
  ${CMAKE_CURRENT_LIST_DIR}/ops/fused_gemm_cpu.cpp
  ${CMAKE_CURRENT_LIST_DIR}/ops/depthwise_conv_nhwc_cpu.cpp
  ${CMAKE_CURRENT_LIST_DIR}/ops/conv2d_nhwc_cpu.cpp
  ${CMAKE_CURRENT_LIST_DIR}/models/mobilenet_v2.cpp
  ${CMAKE_CURRENT_LIST_DIR}/models/centernet.cpp
)
target_link_libraries(comb_vision PUBLIC comb_errc Threads::Threads)
