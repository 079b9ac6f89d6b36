#include "coordinator/outer_gradient_files.h"

#include <filesystem>
#include <system_error>

#include "util/atomic_file.h"

namespace dipaco {

Result<std::string> OuterGradientFiles::write_chunk(int64_t run_id, int64_t lease_id,
                                                    uint32_t module_id, uint64_t sequence,
                                                    std::string_view bytes) {
  std::string run_dir = dir_ + "/run-" + std::to_string(run_id);
  std::error_code error;
  if (!std::filesystem::is_directory(run_dir, error)) {
    std::filesystem::create_directories(run_dir, error);
    if (error) return io_error("cannot create " + run_dir + ": " + error.message());
    DIPACO_RETURN_IF_ERROR(fsync_directory(dir_));
  }
  std::string path = run_dir + "/lease-" + std::to_string(lease_id) + ".module-" +
                     std::to_string(module_id) + ".seq-" + std::to_string(sequence);
  DIPACO_RETURN_IF_ERROR(write_file_atomically(path, bytes));
  return path;
}

void OuterGradientFiles::remove(const std::vector<std::string>& refs) {
  for (const std::string& file : refs) {
    std::error_code ignored;
    std::filesystem::remove(file, ignored);
  }
}

Result<std::string> OuterGradientFiles::read_all(const std::vector<std::string>& refs) {
  std::string payload;
  for (const std::string& file : refs) {
    DIPACO_ASSIGN_OR_RETURN(std::string bytes, read_file(file));
    payload += bytes;
  }
  return payload;
}

}  // namespace dipaco
