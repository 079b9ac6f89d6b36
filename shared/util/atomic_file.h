// AtomicFile: write a file so that readers see either the old contents or the new, never half.
//
// Bytes go to a temporary file in the destination's directory; commit() fsyncs it, renames it
// over the destination and fsyncs the directory. A writer destroyed without commit() (an error,
// an exception, a crash) leaves the destination untouched and removes its temporary file.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "util/status.h"

namespace dipaco {

class AtomicFile {
 public:
  AtomicFile() = default;
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;

  // Creates the temporary file beside `path`. The directory must exist.
  static Result<AtomicFile> create(const std::string& path);

  Status write(const void* data, size_t size);
  Status write(std::string_view bytes) { return write(bytes.data(), bytes.size()); }
  // Bytes written so far.
  size_t size() const { return written_; }
  // Makes the new contents visible at the destination path, durably.
  Status commit();
  // Removes the temporary file; the destination keeps its old contents.
  void abandon();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  size_t written_ = 0;
};

// Writes `bytes` to `path` atomically (see AtomicFile).
Status write_file_atomically(const std::string& path, std::string_view bytes);

// Reads a whole file; errors name the path. A directory is refused ("PATH: is a directory,
// expected a file", invalid_argument) rather than read as empty; a missing file is not_found.
Result<std::string> read_file(const std::string& path);

// fsyncs a directory so that a rename inside it survives a power loss.
Status fsync_directory(const std::string& dir);

}  // namespace dipaco
