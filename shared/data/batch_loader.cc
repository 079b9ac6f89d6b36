#include "data/batch_loader.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "data/checksum.h"
#include "data/shuffle.h"

namespace dipaco {
namespace {

constexpr std::string_view kPositionTag = "dipaco-loader-position/1";

uint64_t hash_selection(const std::vector<uint64_t>& documents) {
  uint64_t hash = kFnvOffset;
  for (uint64_t d : documents) {
    char bytes[8];
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(d >> (8 * i));
    hash = fnv1a64(std::string_view(bytes, 8), hash);
  }
  return hash;
}

}  // namespace

Result<BatchLoader> BatchLoader::create(const TokenFile* file, std::vector<uint64_t> documents,
                                        int batch, int seq_len, uint64_t seed) {
  if (file == nullptr) return invalid_argument("no token file");
  if (batch < 1) return invalid_argument("batch size " + std::to_string(batch) + " is below 1");
  if (seq_len < 1) {
    return invalid_argument("sequence length " + std::to_string(seq_len) + " is below 1");
  }
  if (documents.empty()) {
    documents.resize(file->num_documents());
    for (uint64_t d = 0; d < documents.size(); ++d) documents[d] = d;
  }
  BatchLoader loader;
  loader.file_ = file;
  loader.batch_ = static_cast<uint64_t>(batch);
  loader.seq_len_ = static_cast<uint64_t>(seq_len);
  loader.seed_ = seed;
  std::vector<bool> selected(file->num_documents(), false);
  for (uint64_t d : documents) {
    if (d < selected.size() && selected[d]) {
      return invalid_argument(file->path() + ": document " + std::to_string(d) +
                              " is selected twice");
    }
    if (d < selected.size()) selected[d] = true;
    if (d >= file->num_documents()) {
      return invalid_argument(file->path() + ": document " + std::to_string(d) +
                              " is out of range (the file has " +
                              std::to_string(file->num_documents()) + " documents)");
    }
    loader.num_tokens_ += file->document_end(d) - file->document_begin(d);
  }
  if (loader.num_tokens_ < loader.seq_len_ + 1) {
    return invalid_argument("shard has " + std::to_string(loader.num_tokens_) +
                            " tokens, needs at least " + std::to_string(loader.seq_len_ + 1) +
                            " for seq_len " + std::to_string(seq_len));
  }
  loader.windows_per_epoch_ = (loader.num_tokens_ - 1) / loader.seq_len_;
  loader.selection_hash_ = hash_selection(documents);
  loader.documents_ = std::move(documents);
  loader.window_.resize(loader.seq_len_ + 1);
  loader.build_epoch();
  return loader;
}

void BatchLoader::build_epoch() {
  order_ = documents_;
  deterministic_shuffle(order_, mix_seed(seed_, epoch_));
  stream_start_.resize(order_.size() + 1);
  uint64_t offset = 0;
  for (size_t i = 0; i < order_.size(); ++i) {
    stream_start_[i] = offset;
    offset += file_->document_end(order_[i]) - file_->document_begin(order_[i]);
  }
  stream_start_[order_.size()] = offset;
}

void BatchLoader::copy_stream(uint64_t begin, uint64_t count, int32_t* out) const {
  // The document holding stream token `begin`: the last start <= begin (skips empty ones).
  auto it = std::upper_bound(stream_start_.begin(), stream_start_.end() - 1, begin);
  size_t i = static_cast<size_t>(it - stream_start_.begin()) - 1;
  while (count > 0) {
    uint64_t doc = order_[i];
    uint64_t within = begin - stream_start_[i];
    uint64_t length = stream_start_[i + 1] - stream_start_[i];
    uint64_t take = std::min(count, length - within);
    file_->read(file_->document_begin(doc) + within, take, out);
    out += take;
    begin += take;
    count -= take;
    ++i;
  }
}

void BatchLoader::next_batch(int32_t* inputs, int32_t* targets) {
  for (uint64_t b = 0; b < batch_; ++b) {
    if (cursor_ == windows_per_epoch_) {
      ++epoch_;
      cursor_ = 0;
      build_epoch();
    }
    copy_stream(cursor_ * seq_len_, seq_len_ + 1, window_.data());
    std::memcpy(inputs + b * seq_len_, window_.data(), seq_len_ * sizeof(int32_t));
    std::memcpy(targets + b * seq_len_, window_.data() + 1, seq_len_ * sizeof(int32_t));
    ++cursor_;
  }
}

LoaderPosition BatchLoader::position() const {
  LoaderPosition p;
  p.seed = seed_;
  p.epoch = epoch_;
  p.cursor = cursor_;
  p.batch = batch_;
  p.seq_len = seq_len_;
  p.selection_hash = selection_hash_;
  p.num_tokens = num_tokens_;
  // An epoch that was just finished is the same place as the start of the next one.
  if (p.cursor == windows_per_epoch_) {
    ++p.epoch;
    p.cursor = 0;
  }
  return p;
}

Status BatchLoader::restore(const LoaderPosition& p) {
  auto mismatch = [](const char* what, uint64_t saved, uint64_t here) {
    return failed_precondition("loader position is for " + std::string(what) + " " +
                               std::to_string(saved) + ", this loader has " + std::to_string(here));
  };
  if (p.seed != seed_) return mismatch("seed", p.seed, seed_);
  if (p.batch != batch_) return mismatch("batch size", p.batch, batch_);
  if (p.seq_len != seq_len_) return mismatch("seq_len", p.seq_len, seq_len_);
  if (p.num_tokens != num_tokens_)
    return mismatch("a selection of tokens", p.num_tokens, num_tokens_);
  if (p.selection_hash != selection_hash_) {
    return failed_precondition(
        "loader position is for another selection of documents (selection hash " +
        hex64(p.selection_hash) + ", this loader has " + hex64(selection_hash_) + ")");
  }
  if (p.cursor >= windows_per_epoch_) {
    return invalid_argument("loader position cursor " + std::to_string(p.cursor) + " is past the " +
                            std::to_string(windows_per_epoch_) + " windows of an epoch");
  }
  if (p.epoch != epoch_) {
    epoch_ = p.epoch;
    build_epoch();
  }
  cursor_ = p.cursor;
  return Status::ok();
}

std::string BatchLoader::serialize_position() const {
  LoaderPosition p = position();
  return std::string(kPositionTag) + " seed=" + std::to_string(p.seed) +
         " epoch=" + std::to_string(p.epoch) + " cursor=" + std::to_string(p.cursor) +
         " batch=" + std::to_string(p.batch) + " seq_len=" + std::to_string(p.seq_len) +
         " selection=" + hex64(p.selection_hash) + " tokens=" + std::to_string(p.num_tokens);
}

Result<LoaderPosition> BatchLoader::parse_position(std::string_view text) {
  auto fail = [&](const std::string& why) {
    return invalid_argument("bad loader position '" + std::string(text) + "': " + why);
  };
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  if (text.substr(0, kPositionTag.size()) != kPositionTag) {
    return fail("does not start with " + std::string(kPositionTag));
  }
  struct Field {
    std::string_view key;
    uint64_t* value;
    int base;
    bool seen;
  };
  LoaderPosition p;
  Field fields[] = {
      {"seed", &p.seed, 10, false},        {"epoch", &p.epoch, 10, false},
      {"cursor", &p.cursor, 10, false},    {"batch", &p.batch, 10, false},
      {"seq_len", &p.seq_len, 10, false},  {"selection", &p.selection_hash, 16, false},
      {"tokens", &p.num_tokens, 10, false}};
  std::string_view rest = text.substr(kPositionTag.size());
  while (!rest.empty()) {
    if (rest.front() == ' ') {
      rest.remove_prefix(1);
      continue;
    }
    size_t end = rest.find(' ');
    std::string_view item = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) return fail("'" + std::string(item) + "' is not key=value");
    std::string_view key = item.substr(0, eq);
    std::string_view value = item.substr(eq + 1);
    Field* field = nullptr;
    for (auto& f : fields) {
      if (f.key == key) field = &f;
    }
    if (!field) return fail("unknown key '" + std::string(key) + "'");
    auto [ptr, ec] =
        std::from_chars(value.data(), value.data() + value.size(), *field->value, field->base);
    if (ec != std::errc() || ptr != value.data() + value.size() || value.empty()) {
      return fail("'" + std::string(value) + "' is not a number for " + std::string(key));
    }
    field->seen = true;
  }
  for (const auto& f : fields) {
    if (!f.seen) return fail("missing " + std::string(f.key));
  }
  return p;
}

}  // namespace dipaco
