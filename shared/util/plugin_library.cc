#include "util/plugin_library.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

namespace dipaco {

Result<void*> load_plugin(const PluginLocation& location, int dlopen_flags) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv(location.env_var.c_str()); env != nullptr && *env) {
    candidates.emplace_back(env);
  }
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec)
    candidates.push_back((exe.parent_path() / "../lib/dipaco" / location.file_name).string());
  candidates.push_back(location.install_path);
  if (!location.build_path.empty()) candidates.push_back(location.build_path);

  std::string tried;
  for (const std::string& path : candidates) {
    if (path.empty()) continue;
    if (access(path.c_str(), R_OK) != 0) {
      tried += "\n  " + path + ": not found";
      continue;
    }
    if (void* handle = dlopen(path.c_str(), dlopen_flags); handle != nullptr) return handle;
    tried += "\n  " + path + ": " + dlerror();
  }
  return not_found(location.file_name + " could not be loaded (set " + location.env_var +
                   " to its path); tried:" + tried);
}

}  // namespace dipaco
