#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

namespace dipaco {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

std::string parent_directory(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

AtomicFile::~AtomicFile() {
  abandon();
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)),
      temp_path_(std::move(other.temp_path_)),
      fd_(other.fd_),
      written_(other.written_) {
  other.fd_ = -1;
  other.temp_path_.clear();
}

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    abandon();
    path_ = std::move(other.path_);
    temp_path_ = std::move(other.temp_path_);
    fd_ = other.fd_;
    written_ = other.written_;
    other.fd_ = -1;
    other.temp_path_.clear();
  }
  return *this;
}

Result<AtomicFile> AtomicFile::create(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  AtomicFile file;
  file.path_ = path;
  std::ostringstream temp;
  temp << path << ".tmp." << getpid() << "." << counter.fetch_add(1);
  file.temp_path_ = temp.str();
  file.fd_ = ::open(file.temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (file.fd_ < 0) {
    Status status = io_error("cannot create " + file.temp_path_ + ": " + errno_text());
    file.temp_path_.clear();
    return status;
  }
  return file;
}

Status AtomicFile::write(const void* data, size_t size) {
  if (fd_ < 0) return failed_precondition("write to a closed AtomicFile for " + path_);
  const char* p = static_cast<const char*>(data);
  size_t left = size;
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write " + temp_path_ + ": " + errno_text());
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  written_ += size;
  return Status::ok();
}

Status AtomicFile::commit() {
  if (fd_ < 0) return failed_precondition("commit of a closed AtomicFile for " + path_);
  if (::fsync(fd_) != 0) return io_error("cannot fsync " + temp_path_ + ": " + errno_text());
  if (::close(fd_) != 0) {
    fd_ = -1;
    return io_error("cannot close " + temp_path_ + ": " + errno_text());
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    return io_error("cannot rename " + temp_path_ + " to " + path_ + ": " + errno_text());
  }
  temp_path_.clear();
  return fsync_directory(parent_directory(path_));
}

void AtomicFile::abandon() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!temp_path_.empty()) {
    ::unlink(temp_path_.c_str());
    temp_path_.clear();
  }
}

Status write_file_atomically(const std::string& path, std::string_view bytes) {
  DIPACO_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(path));
  DIPACO_RETURN_IF_ERROR(file.write(bytes));
  return file.commit();
}

Result<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    std::string message = "cannot open " + path + ": " + std::strerror(err);
    return err == ENOENT || err == ENOTDIR ? not_found(message) : io_error(message);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return io_error("cannot stat " + path + ": " + std::strerror(err));
  }
  // A directory opens fine and would read as an empty file; a pipe or a device is read as a
  // stream (a token file given as <(...), /dev/stdin).
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return invalid_argument(path + ": is a directory, expected a file");
  }
  std::string contents;
  if (S_ISREG(st.st_mode)) contents.reserve(static_cast<size_t>(st.st_size));
  char buffer[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return io_error("cannot read " + path + ": " + std::strerror(err));
    }
    contents.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return contents;
}

Status fsync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_error("cannot open directory " + dir + ": " + errno_text());
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return io_error("cannot fsync directory " + dir + ": " + errno_text());
  return Status::ok();
}

}  // namespace dipaco
