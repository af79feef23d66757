# Suites for the vision part of kernels/ (kernels-vision). Included from
# tests/kernels/CMakeLists.txt.
comb_add_test(kernels.tflite SOURCES ${CMAKE_CURRENT_LIST_DIR}/tflite_reader_test.cpp
              LIBS comb_vision TIMEOUT 120)
comb_add_test(kernels.image SOURCES ${CMAKE_CURRENT_LIST_DIR}/image_test.cpp
              LIBS comb_vision TIMEOUT 60)
comb_add_test(kernels.vision_ops SOURCES ${CMAKE_CURRENT_LIST_DIR}/vision_ops_test.cpp
              LIBS comb_vision comb_kernels_reference TIMEOUT 120)
# Again with the hand-written AVX-512 kernels off (the AVX2 ones on machines with AVX2), and
# with both off: the portable fallbacks.
add_test(NAME kernels.vision_ops_avx2 COMMAND test_kernels_vision_ops)
set_tests_properties(kernels.vision_ops_avx2 PROPERTIES TIMEOUT 120
                     ENVIRONMENT COMB_KERNELS_NO_AVX512=1)
add_test(NAME kernels.vision_ops_portable COMMAND test_kernels_vision_ops)
set_tests_properties(kernels.vision_ops_portable PROPERTIES TIMEOUT 120
                     ENVIRONMENT "COMB_KERNELS_NO_AVX512=1;COMB_KERNELS_NO_AVX2=1")
comb_add_test(kernels.mobilenet_v2 SOURCES ${CMAKE_CURRENT_LIST_DIR}/mobilenet_v2_test.cpp
              LIBS comb_vision comb_kernels_reference TIMEOUT 120)
comb_add_test(kernels.centernet SOURCES ${CMAKE_CURRENT_LIST_DIR}/centernet_test.cpp
              LIBS comb_vision comb_kernels_reference TIMEOUT 120)
if(TARGET comb_kernels)
  comb_add_test(kernels.cuda_vision SOURCES ${CMAKE_CURRENT_LIST_DIR}/cuda_vision_test.cpp
                LIBS comb_kernels comb_vision_cuda comb_vision comb_kernels_reference TIMEOUT 120)
  target_compile_definitions(test_kernels_cuda_vision PRIVATE COMB_TEST_REGISTRY=1)
else()
  comb_add_test(kernels.cuda_vision SOURCES ${CMAKE_CURRENT_LIST_DIR}/cuda_vision_test.cpp
                LIBS comb_vision_cuda comb_vision comb_kernels_reference TIMEOUT 120)
endif()
