// WalGroupSync: one fdatasync() of the -wal file for every commit written before it started.
#include "coordinator/wal_group_sync.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace dipaco {

Result<std::unique_ptr<WalGroupSync>> WalGroupSync::open(std::string wal_path) {
  int fd = ::open(wal_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return io_error(wal_path +
                    ": cannot open the SQLite write-ahead log for fsync: " + std::strerror(errno));
  return std::unique_ptr<WalGroupSync>(new WalGroupSync(std::move(wal_path), fd));
}

WalGroupSync::~WalGroupSync() {
  if (fd_ >= 0) ::close(fd_);
}

uint64_t WalGroupSync::committed() {
  std::lock_guard lock(mutex_);
  return ++committed_;
}

Status WalGroupSync::sync_file() {
  // SQLite keeps the -wal file (same inode) while a connection is open; should another process's
  // last close have removed it, the frames were checkpointed into the database file then, and the
  // file SQLite uses now is a new one.
  struct stat info;
  if (::fstat(fd_, &info) == 0 && info.st_nlink == 0) {
    int fresh = ::open(wal_path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fresh < 0)
      return io_error(wal_path_ + ": the write-ahead log was replaced and cannot be reopened: " +
                      std::strerror(errno));
    ::close(fd_);
    fd_ = fresh;
  }
  if (::fdatasync(fd_) != 0)
    return io_error(wal_path_ + ": fdatasync of the SQLite write-ahead log failed (" +
                    std::strerror(errno) +
                    "); commits since the last successful sync may be lost on power loss; "
                    "restart the coordinator");
  return Status::ok();
}

Status WalGroupSync::wait_durable(uint64_t ticket) {
  std::unique_lock lock(mutex_);
  ++waited_;
  while (durable_ < ticket) {
    if (!failure_.is_ok()) return failure_;
    if (syncing_) {
      synced_.wait(lock);
      continue;
    }
    // This waiter syncs for everyone who committed so far.
    syncing_ = true;
    uint64_t target = committed_;
    lock.unlock();
    Status synced = sync_file();
    lock.lock();
    syncing_ = false;
    if (synced.is_ok()) {
      durable_ = std::max(durable_, target);
      ++syncs_;
    } else {
      failure_ = synced;
    }
    synced_.notify_all();
  }
  return Status::ok();
}

uint64_t WalGroupSync::syncs() const {
  std::lock_guard lock(mutex_);
  return syncs_;
}

uint64_t WalGroupSync::durable_commits() const {
  std::lock_guard lock(mutex_);
  return waited_;
}

}  // namespace dipaco
