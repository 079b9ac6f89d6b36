// Where pushed outer-gradient chunks live: outside SQLite, behind a small interface.
//
// SQLite stores only a reference string per accepted chunk. The default store, OuterGradientFiles,
// writes each chunk to <dir>/run-<run>/lease-<lease>.module-<module>.seq-<sequence> with
// AtomicFile (fsync + rename) before the row naming it commits, so a row always names a whole,
// durable file; a crash between the two leaves an orphan file that the retried chunk overwrites.
// Keeping payloads out of the database keeps it small and its transactions short (a module's
// gradient can be hundreds of MB). Another store (memory for tests, object storage later) plugs
// in through CoordinatorOptions::gradient_store.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace dipaco {

class OuterGradientStore {
 public:
  virtual ~OuterGradientStore() = default;
  // Stores one chunk durably; returns the reference recorded in SQLite. Writing the same
  // (run, lease, module, sequence) again replaces the chunk.
  virtual Result<std::string> write_chunk(int64_t run_id, int64_t lease_id, uint32_t module_id,
                                          uint64_t sequence, std::string_view bytes) = 0;
  // Concatenates chunks in the given order (offset order) into one payload. Thread-safe.
  virtual Result<std::string> read_all(const std::vector<std::string>& refs) = 0;
  // Drops chunks once their aggregation is recorded; missing ones are not an error.
  virtual void remove(const std::vector<std::string>& refs) = 0;
};

class OuterGradientFiles : public OuterGradientStore {
 public:
  // `dir` must exist.
  explicit OuterGradientFiles(std::string dir) : dir_(std::move(dir)) {}

  Result<std::string> write_chunk(int64_t run_id, int64_t lease_id, uint32_t module_id,
                                  uint64_t sequence, std::string_view bytes) override;
  Result<std::string> read_all(const std::vector<std::string>& refs) override;
  void remove(const std::vector<std::string>& refs) override;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace dipaco
