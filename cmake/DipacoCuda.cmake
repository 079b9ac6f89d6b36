# DIPACO_CUDA=AUTO turns the CUDA backend on when a CUDA compiler is found (CUDA 13 lives in
# /usr/local/cuda on our build hosts). Packages target sm_80 and sm_90 plus PTX for newer GPUs.
set(DIPACO_CUDA_ENABLED OFF)
if(NOT DIPACO_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80-real 90-real 90-virtual)
    endif()
    # CMake 3.25 does not know nvcc's C++20 flag; device code needs no more than C++17.
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(DIPACO_CUDA_ENABLED ON)
  elseif(DIPACO_CUDA STREQUAL "ON")
    message(FATAL_ERROR "DIPACO_CUDA=ON but no CUDA compiler was found (install the CUDA toolkit "
                        "or pass -DCMAKE_CUDA_COMPILER=/path/to/nvcc)")
  endif()
endif()
