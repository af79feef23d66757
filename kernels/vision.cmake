# Vision part of kernels/: TFLite import, BMP images, MobileNetV2 and the CenterNet-style
# detector (their NHWC ops, fused GEMM and depthwise and dense convolutions, are in the op
# list of kernels/CMakeLists.txt). Included from kernels/CMakeLists.txt.
add_library(comb_vision STATIC
  ${CMAKE_CURRENT_LIST_DIR}/tflite_reader.cpp
  ${CMAKE_CURRENT_LIST_DIR}/image.cpp
  ${CMAKE_CURRENT_LIST_DIR}/models/mobilenet_v2.cpp
  ${CMAKE_CURRENT_LIST_DIR}/models/centernet.cpp
)
target_link_libraries(comb_vision PUBLIC comb_kernels comb_base Threads::Threads)

# CUDA backend (kernels/cuda and the ops' .cu files): hand-written kernels, cuBLAS, and
# cuDNN when found. Built where nvcc was found (COMB_HAVE_CUDA); otherwise a stub with the
# same functions that answers "unsupported", so callers need no #ifdef. Links the CUDA
# runtime (libcudart) only, never libcuda, so it builds on machines without a driver.
if(COMB_HAVE_CUDA)
  find_path(COMB_CUDNN_INCLUDE_DIR cudnn.h
            HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include /usr/include)
  find_library(COMB_CUDNN_LIB cudnn
               HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib /usr/local/cuda/lib64)
  # The ops' CUDA versions (kernels/ops/<op>.cu) come from the op list in
  # kernels/CMakeLists.txt (COMB_KERNEL_CUDA_SOURCES).
  add_library(comb_vision_cuda STATIC
    ${CMAKE_CURRENT_LIST_DIR}/cuda/cuda_backend.cpp
    ${COMB_KERNEL_CUDA_SOURCES}
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
