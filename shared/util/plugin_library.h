// Loading dipaco's optional shared libraries (plugins) at run time.
//
// Some parts of dipaco live in their own shared library so that a binary starts without them:
// the CUDA backend (needs the NVIDIA runtime, absent on CPU hosts) and the SentencePiece shim
// (needs an isolated symbol scope). Each is looked up, in order, at
//   $<env_var>, <exe dir>/../lib/dipaco/<file_name>, <install_path>, <build_path>.
#pragma once

#include <dlfcn.h>

#include <string>

#include "util/status.h"

namespace dipaco {

struct PluginLocation {
  std::string file_name;     // "libdipaco_cuda.so"
  std::string env_var;       // "DIPACO_CUDA_PLUGIN"
  std::string install_path;  // absolute path where packages put it
  std::string build_path;    // where this build tree has it ("" when not built)
};

// dlopen()s the first candidate that exists. The error names every path tried and why it
// failed, e.g. "libdipaco_cuda.so: libcudart.so.13: cannot open shared object file".
Result<void*> load_plugin(const PluginLocation& location, int dlopen_flags);

// Looks up `name` in `handle`; false when missing.
template <typename F>
bool bind_plugin_symbol(void* handle, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(handle, name));
  return *out != nullptr;
}

}  // namespace dipaco
