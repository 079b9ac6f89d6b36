// TokenBatchSource: batches from a token file through the data pipeline's BatchLoader.
#pragma once

#include <memory>
#include <string>

#include "data/batch_loader.h"
#include "data/token_file.h"
#include "train/batch_source.h"

namespace dipaco {

class TokenBatchSource final : public BatchSource {
 public:
  // Opens `path` and draws [batch, seq_len] windows from all its documents.
  static Result<std::unique_ptr<TokenBatchSource>> open(const std::string& path, int batch,
                                                        int seq_len, uint64_t seed);

  const TokenFile& file() const { return *file_; }
  int batch() const override { return loader_->batch(); }
  int seq_len() const override { return loader_->seq_len(); }
  void next(int32_t* inputs, int32_t* targets) override { loader_->next_batch(inputs, targets); }
  std::string position() const override { return loader_->serialize_position(); }
  Status restore(const std::string& position) override;

 private:
  std::unique_ptr<TokenFile> file_;
  std::unique_ptr<BatchLoader> loader_;
};

}  // namespace dipaco
