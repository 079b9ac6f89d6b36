# Use ccache when it is installed; it makes CI rebuilds and fresh clones cheap.
find_program(DIPACO_CCACHE ccache)
if(DIPACO_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER "${DIPACO_CCACHE}")
  set(CMAKE_CXX_COMPILER_LAUNCHER "${DIPACO_CCACHE}")
  set(CMAKE_CUDA_COMPILER_LAUNCHER "${DIPACO_CCACHE}")
endif()
