// BatchLoader: (batch, seq_len) training windows from a token file, resumable exactly.
//
// The selected documents' tokens are concatenated in an order shuffled per epoch by
// (seed, epoch). That stream is cut into windows of seq_len + 1 tokens with stride seq_len
// (window w covers stream tokens [w*seq_len, w*seq_len + seq_len + 1)), so an epoch has
// floor((N - 1) / seq_len) windows for N selected tokens; the few tokens after the last full
// window are left out of that epoch (a different tail each epoch, as the order changes).
// A batch is the next `batch` windows; a batch that runs past the end of an epoch continues
// with the first windows of the next (reshuffled) epoch. Windows cross document boundaries:
// the BOS/EOS tokens the pipeline writes mark them.
//
// position() is the exact place in that sequence: restore(position()) on a loader created with
// the same file, selection, shape and seed gives the same batches the original would have.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/token_file.h"
#include "util/status.h"

namespace dipaco {

struct LoaderPosition {
  uint64_t seed = 0;
  uint64_t epoch = 0;
  uint64_t cursor = 0;  // next window within the epoch, < windows per epoch
  uint64_t batch = 0;   // the shape the position belongs to
  uint64_t seq_len = 0;
  uint64_t selection_hash = 0;  // FNV-1a of the selected document indices, in order
  uint64_t num_tokens = 0;      // tokens in the selection
};

class BatchLoader {
 public:
  // Draws (batch, seq_len) windows from the given documents of `file` (all documents if
  // `documents` is empty). `file` must outlive the loader and stay where it is (not be moved
  // from). Errors: a document index out of range or selected twice, batch or seq_len < 1, or
  // fewer than seq_len + 1 selected tokens ("shard has 12 tokens, needs at least 257 for
  // seq_len 256").
  static Result<BatchLoader> create(const TokenFile* file, std::vector<uint64_t> documents,
                                    int batch, int seq_len, uint64_t seed);

  // inputs and targets: batch*seq_len int32 each, row-major [batch][seq_len];
  // targets[b][t] = inputs[b][t+1] within the window (the token after the input).
  void next_batch(int32_t* inputs, int32_t* targets);

  LoaderPosition position() const;
  // Rejects a position made for another seed, shape or selection, or out of range.
  Status restore(const LoaderPosition& p);

  // One line of text ("dipaco-loader-position/1 seed=... epoch=... ..."), for checkpoints.
  std::string serialize_position() const;
  static Result<LoaderPosition> parse_position(std::string_view text);

  // Input tokens per epoch: windows per epoch × seq_len.
  uint64_t tokens_per_epoch() const { return windows_per_epoch_ * seq_len_; }
  uint64_t windows_per_epoch() const { return windows_per_epoch_; }
  uint64_t num_tokens() const { return num_tokens_; }
  int batch() const { return static_cast<int>(batch_); }
  int seq_len() const { return static_cast<int>(seq_len_); }

 private:
  BatchLoader() = default;
  // Lays out the stream of `epoch_`: document order and cumulative starts.
  void build_epoch();
  // Copies stream tokens [begin, begin + count) of the current epoch into out.
  void copy_stream(uint64_t begin, uint64_t count, int32_t* out) const;

  const TokenFile* file_ = nullptr;
  std::vector<uint64_t> documents_;  // selection, as given
  uint64_t batch_ = 0;
  uint64_t seq_len_ = 0;
  uint64_t seed_ = 0;
  uint64_t selection_hash_ = 0;
  uint64_t num_tokens_ = 0;
  uint64_t windows_per_epoch_ = 0;

  uint64_t epoch_ = 0;
  uint64_t cursor_ = 0;
  std::vector<uint64_t> order_;         // documents of this epoch, in stream order
  std::vector<uint64_t> stream_start_;  // stream offset of order_[i]; back() = num_tokens_
  std::vector<int32_t> window_;         // seq_len + 1 scratch
};

}  // namespace dipaco
