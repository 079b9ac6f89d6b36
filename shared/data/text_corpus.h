// Reading the user's corpora into Documents.
//
//   .txt                 one document per blank-line-separated block (TxtMode::kBlocks), or
//                        one per file (TxtMode::kFile)
//   .jsonl / .jsonl.gz   one JSON object per line with a string "text" field (C4 layout);
//   .json.gz             optional "id" and "category" strings are kept, other fields ignored
//   a directory          every such file below it, in sorted path order
// Extensions match in any case (.TXT, .JSONL). A plain .json file is not read: it is most often
// one JSON document (an array), which the line reader would refuse.
//
// Errors name the file and line: "corpus.jsonl:17: no \"text\" field".
#pragma once

#include <string>
#include <vector>

#include "data/document.h"
#include "util/status.h"

namespace dipaco {

enum class TxtMode { kBlocks, kFile };

struct CorpusOptions {
  TxtMode txt_mode = TxtMode::kBlocks;
  bool show_progress = true;  // a util/progress.h line on stderr (docs/s)
};

// True when `path` names a file read_corpus understands (by its extension).
bool is_corpus_file(const std::string& path);

// The corpus files `path` stands for: itself, or for a directory the corpus files below it,
// sorted. Errors when a file has an unknown extension or a directory holds no corpus file.
Result<std::vector<std::string>> corpus_files(const std::string& path);

// All documents of all `paths`, in order. Documents whose text is only whitespace are dropped.
// An empty result is an error ("corpus data/x has no documents").
Result<std::vector<Document>> read_corpus(const std::vector<std::string>& paths,
                                          const CorpusOptions& options = {});

// Documents of one .txt text (`name` for ids: "name#3" for the third block).
std::vector<Document> documents_from_txt(const std::string& text, const std::string& name,
                                         TxtMode mode);

// Documents of one JSONL text; `name` prefixes errors and default ids ("name:17").
Result<std::vector<Document>> documents_from_jsonl(const std::string& text,
                                                   const std::string& name);

}  // namespace dipaco
