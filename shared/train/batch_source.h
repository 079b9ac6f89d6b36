// BatchSource: where a training loop gets its (inputs, targets) batches, with a resumable
// position. Implementations: TokenBatchSource (token files, via data/batch_loader.h) and
// SyntheticBatchSource (tests and benchmarks).
#pragma once

#include <cstdint>
#include <string>

#include "util/status.h"

namespace dipaco {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int batch() const = 0;
  virtual int seq_len() const = 0;
  // inputs, targets: host [batch, seq_len] int32.
  virtual void next(int32_t* inputs, int32_t* targets) = 0;
  // One line of text that restore() accepts; stored in checkpoints.
  virtual std::string position() const = 0;
  virtual Status restore(const std::string& position) = 0;
};

// Reproducible pseudo-random tokens with a learnable pattern: each window is an arithmetic
// progression modulo vocab with a random start and stride, so a model can get its loss well
// below log(vocab). Position = number of batches drawn.
class SyntheticBatchSource final : public BatchSource {
 public:
  SyntheticBatchSource(int batch, int seq_len, int vocab, uint64_t seed)
      : batch_(batch), seq_len_(seq_len), vocab_(vocab), seed_(seed) {}
  int batch() const override { return batch_; }
  int seq_len() const override { return seq_len_; }
  void next(int32_t* inputs, int32_t* targets) override;
  std::string position() const override;
  Status restore(const std::string& position) override;

 private:
  int batch_, seq_len_, vocab_;
  uint64_t seed_;
  uint64_t drawn_ = 0;
};

}  // namespace dipaco
