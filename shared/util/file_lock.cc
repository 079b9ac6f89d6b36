#include "util/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
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

FileLock::FileLock(FileLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

void FileLock::remove_and_unlock() {
  if (fd_ < 0) return;
  unlink(path_.c_str());
  close(std::exchange(fd_, -1));
}

Result<FileLock> FileLock::try_lock(const std::string& path, const std::string& holder) {
  FileLock lock;
  lock.path_ = path;
  // A holder may remove the file (remove_and_unlock) between our open and our flock: the lock
  // we then hold is on a file nobody else will open. Retried on the file now at `path`.
  for (int attempt = 0;; ++attempt) {
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return io_error(path + ": cannot open: " + std::strerror(errno));
    lock.fd_ = fd;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) return unavailable(read_all(fd));
      return io_error(path + ": cannot lock: " + std::strerror(errno));
    }
    struct stat held {
    }, named{};
    if (fstat(fd, &held) != 0) return io_error(path + ": cannot stat: " + std::strerror(errno));
    if (stat(path.c_str(), &named) == 0 && named.st_dev == held.st_dev &&
        named.st_ino == held.st_ino)
      break;
    close(std::exchange(lock.fd_, -1));
    if (attempt == 100) return io_error(path + ": keeps being removed while it is locked");
  }
  const int fd = lock.fd_;
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, holder.data(), holder.size(), 0) != static_cast<ssize_t>(holder.size())) {
    return io_error(path + ": cannot write: " + std::strerror(errno));
  }
  return lock;
}

}  // namespace dipaco
