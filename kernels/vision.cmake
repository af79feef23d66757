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
target_link_libraries(comb_vision PUBLIC comb_kernels comb_base Threads::Threads)

# CUDA backend (kernels/cuda): hand-written kernels, cuBLAS, and cuDNN when found. Built
# where nvcc was found (COMB_HAVE_CUDA); otherwise a stub with the same functions that
# answers "unsupported", so callers need no #ifdef. Links the CUDA runtime (libcudart) only,
# never libcuda, so it builds on machines without a driver.
if(COMB_HAVE_CUDA)
  find_path(COMB_CUDNN_INCLUDE_DIR cudnn.h
            HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include /usr/include)
  find_library(COMB_CUDNN_LIB cudnn
               HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib /usr/local/cuda/lib64)
  add_library(comb_vision_cuda STATIC
    ${CMAKE_CURRENT_LIST_DIR}/cuda/cuda_backend.cpp
    ${CMAKE_CURRENT_LIST_DIR}/cuda/vision_kernels.cu
  )
  set_target_properties(comb_vision_cuda PROPERTIES CUDA_STANDARD 17 POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(comb_vision_cuda PUBLIC comb_base PRIVATE CUDA::cudart CUDA::cublas)
  if(COMB_CUDNN_INCLUDE_DIR AND COMB_CUDNN_LIB)
    target_include_directories(comb_vision_cuda PRIVATE ${COMB_CUDNN_INCLUDE_DIR})
    target_link_libraries(comb_vision_cuda PRIVATE ${COMB_CUDNN_LIB})
    target_compile_definitions(comb_vision_cuda PRIVATE COMB_HAVE_CUDNN=1)
    message(STATUS "  CUDA vision     : kernels + cuBLAS + cuDNN (${COMB_CUDNN_LIB})")
  else()
    target_compile_definitions(comb_vision_cuda PRIVATE COMB_HAVE_CUDNN=0)
    message(STATUS "  CUDA vision     : kernels + cuBLAS (cuDNN not found)")
  endif()
else()
  add_library(comb_vision_cuda STATIC ${CMAKE_CURRENT_LIST_DIR}/cuda/cuda_backend_stub.cpp)
  target_link_libraries(comb_vision_cuda PUBLIC comb_base)
endif()
