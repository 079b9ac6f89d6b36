#include "train/token_batch_source.h"

namespace dipaco {

Result<std::unique_ptr<TokenBatchSource>> TokenBatchSource::open(const std::string& path, int batch,
                                                                 int seq_len, uint64_t seed) {
  auto source = std::unique_ptr<TokenBatchSource>(new TokenBatchSource());
  DIPACO_ASSIGN_OR_RETURN(TokenFile file, TokenFile::open(path));
  source->file_ = std::make_unique<TokenFile>(std::move(file));
  auto loader = BatchLoader::create(source->file_.get(), {}, batch, seq_len, seed);
  if (!loader.is_ok()) return loader.status().with_context(path);
  source->loader_ = std::make_unique<BatchLoader>(std::move(loader).value());
  return source;
}

Status TokenBatchSource::restore(const std::string& position) {
  DIPACO_ASSIGN_OR_RETURN(LoaderPosition p, BatchLoader::parse_position(position));
  return loader_->restore(p).with_context(file_->path());
}

}  // namespace dipaco
