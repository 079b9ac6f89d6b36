// WalGroupSync: group commit for a SQLite database in WAL mode with synchronous=NORMAL.
//
// With synchronous=NORMAL a COMMIT only write()s its frames to the -wal file; SQLite fsyncs that
// file at checkpoints, not at commits. To make a commit durable without holding the caller's lock
// during the fsync, the committer takes a ticket right after COMMIT (under its lock), releases
// the lock, and waits for the ticket here: one fdatasync() of the -wal file covers every commit
// whose frames were written before it started, so callers that commit while a sync is in flight
// share the next one. SQLite recovers a WAL only up to its first frame with a bad checksum (the
// checksums are cumulative), so a power loss can only drop a suffix of commits: a durable ticket
// makes every earlier commit durable too. Frames that a checkpoint already moved into the
// database file were fsynced there by SQLite before the WAL was reused.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "util/status.h"

namespace dipaco {

class WalGroupSync {
 public:
  // Opens `wal_path` (the database's "-wal" file; it must exist: open it after the first
  // transaction) for fdatasync().
  static Result<std::unique_ptr<WalGroupSync>> open(std::string wal_path);
  ~WalGroupSync();
  WalGroupSync(const WalGroupSync&) = delete;
  WalGroupSync& operator=(const WalGroupSync&) = delete;

  // Called right after a COMMIT returned, while the committer still holds the lock that
  // serializes commits: the ticket of that commit.
  uint64_t committed();
  // Blocks until the commit of `ticket` and every earlier one are on disk. Call without the
  // commit lock. A failed fdatasync is sticky: the kernel may have dropped the dirty pages, so
  // this and every later wait return the error (restart the process to recover from the WAL).
  Status wait_durable(uint64_t ticket);

  // fdatasync() calls so far (each may cover many commits).
  uint64_t syncs() const;
  // Commits that were waited for so far.
  uint64_t durable_commits() const;

 private:
  WalGroupSync(std::string wal_path, int fd) : wal_path_(std::move(wal_path)), fd_(fd) {}
  Status sync_file();

  std::string wal_path_;
  int fd_ = -1;
  mutable std::mutex mutex_;
  std::condition_variable synced_;
  uint64_t committed_ = 0;  // last ticket handed out
  uint64_t durable_ = 0;    // every ticket <= this is on disk
  bool syncing_ = false;    // a waiter is inside fdatasync()
  uint64_t syncs_ = 0;
  uint64_t waited_ = 0;
  Status failure_;  // sticky fdatasync failure
};

}  // namespace dipaco
