# Joins the CUDA backend to comb_kernels (included from kernels/CMakeLists.txt when
# COMB_HAVE_CUDA): the tensor backend adapter defines detail::make_cuda_backend and the
# registry calls it (COMB_KERNELS_CUDA=1). The kernels, cuBLAS and cuDNN code live in
# comb_vision_cuda (kernels/vision.cmake), which does not depend on comb_kernels.
target_sources(comb_kernels PRIVATE ${CMAKE_CURRENT_LIST_DIR}/cuda_tensor_backend.cpp)
target_compile_definitions(comb_kernels PRIVATE COMB_KERNELS_CUDA=1)
target_link_libraries(comb_kernels PUBLIC comb_vision_cuda PRIVATE CUDA::cudart)
