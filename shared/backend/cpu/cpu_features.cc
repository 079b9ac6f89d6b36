#include "backend/cpu/cpu_features.h"

#include <thread>

namespace dipaco {

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
    unsigned n = std::thread::hardware_concurrency();
    f.logical_cores = n == 0 ? 1 : static_cast<int>(n);
    return f;
  }();
  return features;
}

std::string describe_cpu_features(const CpuFeatures& f) {
  std::string text;
  auto add = [&text](bool has, const char* name) {
    if (has) text += (text.empty() ? "" : " ") + std::string(name);
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.avx512f, "avx512f");
  add(f.avx512bf16, "avx512bf16");
  if (text.empty()) text = "baseline x86-64";
  return text + ", " + std::to_string(f.logical_cores) + " logical cores";
}

}  // namespace dipaco
