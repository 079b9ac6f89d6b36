#include "train/batch_source.h"

#include <charconv>

namespace dipaco {

namespace {
uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
}  // namespace

void SyntheticBatchSource::next(int32_t* inputs, int32_t* targets) {
  for (int b = 0; b < batch_; ++b) {
    uint64_t r = mix(seed_ ^ mix(drawn_ * 1000003ULL + static_cast<uint64_t>(b)));
    int64_t start = static_cast<int64_t>(r % static_cast<uint64_t>(vocab_));
    int64_t stride = 1 + static_cast<int64_t>((r >> 32) % 7);
    for (int t = 0; t <= seq_len_; ++t) {
      auto tok = static_cast<int32_t>((start + stride * t) % vocab_);
      if (t < seq_len_) inputs[b * seq_len_ + t] = tok;
      if (t > 0) targets[b * seq_len_ + t - 1] = tok;
    }
  }
  ++drawn_;
}

std::string SyntheticBatchSource::position() const {
  return "synthetic/1 seed=" + std::to_string(seed_) + " drawn=" + std::to_string(drawn_);
}

Status SyntheticBatchSource::restore(const std::string& position) {
  std::string prefix = "synthetic/1 seed=" + std::to_string(seed_) + " drawn=";
  if (position.rfind(prefix, 0) != 0) {
    return invalid_argument("data position '" + position + "' is not from this synthetic source (" +
                            prefix + "...)");
  }
  const char* begin = position.data() + prefix.size();
  const char* end = position.data() + position.size();
  uint64_t drawn = 0;
  auto [ptr, ec] = std::from_chars(begin, end, drawn);
  if (ec != std::errc() || ptr != end)
    return invalid_argument("bad data position '" + position + "'");
  drawn_ = drawn;
  return Status::ok();
}

}  // namespace dipaco
