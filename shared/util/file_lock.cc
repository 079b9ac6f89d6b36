#include "util/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace dipaco {

namespace {

std::string read_all(int fd) {
  std::string text;
  char buf[256];
  off_t offset = 0;
  while (true) {
    const ssize_t n = pread(fd, buf, sizeof buf, offset);
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    offset += n;
  }
  return text;
}

}  // namespace

FileLock::~FileLock() {
  if (fd_ >= 0) close(fd_);  // releases the lock
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

Result<FileLock> FileLock::try_lock(const std::string& path, const std::string& holder) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return io_error(path + ": cannot open: " + std::strerror(errno));
  FileLock lock;
  lock.fd_ = fd;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return unavailable(read_all(fd));
    return io_error(path + ": cannot lock: " + std::strerror(errno));
  }
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, holder.data(), holder.size(), 0) != static_cast<ssize_t>(holder.size())) {
    return io_error(path + ": cannot write: " + std::strerror(errno));
  }
  return lock;
}

}  // namespace dipaco
