// What the CPU we run on can do, detected at run time. Packages are built for baseline x86-64;
// hot loops pick their AVX2/AVX-512 variants from this, never from -march=native.
#pragma once

#include <string>

namespace dipaco {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bf16 = false;
  int logical_cores = 1;
};

const CpuFeatures& cpu_features();
// "avx2 fma avx512f, 2 logical cores"
std::string describe_cpu_features(const CpuFeatures& features);

}  // namespace dipaco
