// RunDirLock: one process owns a run directory at a time — `dipaco run` while it runs, `dipaco
// serve` while it plans a grid run into it and serves it. A second owner would expire the first
// one's leases as those of a dead process, or plan over its files. The lock is an flock() on
// <run.dir>/.lock (FileLock: a crash never leaves it stale), whose file names the holder.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "util/file_lock.h"
#include "util/status.h"

namespace dipaco {

struct RunDirLock {
  std::string dir;
  FileLock lock;
  bool created_dir = false;        // run.dir did not exist before the lock was taken
  bool created_lock_file = false;  // nor did run.dir/.lock

  // For a first start that failed: removes the lock file and the directory if the lock created
  // them (the directory only when empty), and releases the lock.
  void release_leaving_nothing();
};

// Creates run.dir if needed and takes its lock without waiting; `program` ("dipaco run", "dipaco
// serve") goes into the lock file with the pid. Held by another process (or another RunDirLock
// of this one): failed_precondition "run.dir D is in use by another dipaco process (dipaco
// serve, pid N); ...".
Result<RunDirLock> lock_run_dir(const std::string& dir, const std::string& program);

// The run directories one process owns for as long as it lives (dipaco serve: every grid run it
// planned, by --grid or CreateRun/SubmitRun), each locked once. Thread-safe.
class RunDirLocks {
 public:
  explicit RunDirLocks(std::string program) : program_(std::move(program)) {}

  // Calls body(RunDirLock&) holding the lock of `dir`: taken the first time (or again after a
  // body released it, as a failed first start does), then kept until this object goes. One body
  // per directory at a time; the same directory however spelled.
  template <typename T, typename Body>
  Result<T> with(const std::string& dir, Body body) {
    std::shared_ptr<Held> held = entry(dir);
    std::lock_guard lock(held->mutex);
    if (!held->lock.lock.held()) {
      DIPACO_ASSIGN_OR_RETURN(held->lock, lock_run_dir(dir, program_));
    }
    return body(held->lock);
  }

 private:
  struct Held {
    std::mutex mutex;
    RunDirLock lock;
  };
  std::shared_ptr<Held> entry(const std::string& dir);

  const std::string program_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Held>> held_;  // by absolute, normal path
};

}  // namespace dipaco
