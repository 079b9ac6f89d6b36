// The documents file: the pipeline's own corpus format, one JSON object per line,
// {"id": "...", "category": "...", "text": "..."}; read back by read_corpus (text_corpus.h).
#pragma once

#include <string>
#include <vector>

#include "data/document.h"
#include "util/status.h"

namespace dipaco {

// Writes `documents` to `path` atomically (util/atomic_file.h).
Status write_documents_jsonl(const std::string& path, const std::vector<Document>& documents);

// FNV-1a over every document's id, category and text, in order: the corpus's identity in
// meta files.
uint64_t documents_hash(const std::vector<Document>& documents);

}  // namespace dipaco
