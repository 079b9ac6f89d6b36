// FileLock: an exclusive advisory lock (flock) on a file, held until the FileLock is destroyed
// or the process ends (the kernel drops it with the descriptor, so a crash never leaves a stale
// lock). The holder writes a line about itself into the file (e.g. its pid) so that whoever
// finds the lock taken can say who holds it. Two FileLocks on the same file conflict even
// inside one process.
#pragma once

#include <string>

#include "util/status.h"

namespace dipaco {

class FileLock {
 public:
  FileLock() = default;
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;

  // Creates `path` if needed (its directory must exist) and takes the lock without waiting;
  // then replaces the file's contents with `holder`. Taken by someone else: unavailable, the
  // message being what the holder wrote (empty when it has not written yet); the file is left
  // as it was. Other failures: io_error naming the path.
  static Result<FileLock> try_lock(const std::string& path, const std::string& holder);

  bool held() const { return fd_ >= 0; }

  // Removes the lock file, then releases the lock (for a holder that leaves nothing behind, such
  // as a failed first start). Safe against a concurrent try_lock: one that opened the file just
  // before it went finds it gone once it holds the lock, and takes the lock on a new file.
  void remove_and_unlock();

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace dipaco
