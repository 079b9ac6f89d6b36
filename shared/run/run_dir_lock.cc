#include "run/run_dir_lock.h"

#include <unistd.h>

#include <filesystem>

#include "run/run_layout.h"

namespace dipaco {

void RunDirLock::release_leaving_nothing() {
  if (!lock.held()) return;
  if (created_lock_file) {
    lock.remove_and_unlock();
  } else {
    lock = FileLock();
  }
  std::error_code ignored;
  if (created_dir) std::filesystem::remove(dir, ignored);  // only when empty
}

Result<RunDirLock> lock_run_dir(const std::string& dir, const std::string& program) {
  RunDirLock held;
  held.dir = dir;
  const std::string lock_file = RunLayout{dir}.lock();
  std::error_code ec;
  held.created_dir = !std::filesystem::exists(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_error(dir + ": cannot create the run directory: " + ec.message());
  held.created_lock_file = !std::filesystem::exists(lock_file, ec);
  auto lock = FileLock::try_lock(lock_file, program + ", pid " + std::to_string(getpid()) + "\n");
  if (lock.is_ok()) {
    held.lock = std::move(lock).value();
    return held;
  }
  if (held.created_dir) std::filesystem::remove(dir, ec);  // only when empty
  if (lock.status().code() != StatusCode::kUnavailable) return lock.status();
  std::string holder = lock.status().message();
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
  return failed_precondition("run.dir " + dir + " is in use by another dipaco process (" +
                             (holder.empty() ? std::string("pid unknown") : holder) +
                             "); wait for it to finish or stop it, or use another run.dir");
}

std::shared_ptr<RunDirLocks::Held> RunDirLocks::entry(const std::string& dir) {
  std::error_code ec;
  std::filesystem::path key = std::filesystem::absolute(dir, ec).lexically_normal();
  if (!key.has_filename()) key = key.parent_path();  // "runs/a/" is "runs/a"
  std::lock_guard lock(mutex_);
  std::shared_ptr<Held>& held = held_[key.string()];
  if (!held) held = std::make_shared<Held>();
  return held;
}

}  // namespace dipaco
