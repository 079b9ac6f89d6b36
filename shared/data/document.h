// Document: one unit of training text, as read from any corpus format.
//
// Documents are what the pipeline splits (train/validation), shuffles and routes; a document's
// tokens are never split across shards.
#pragma once

#include <string>

namespace dipaco {

struct Document {
  std::string id;        // stable name: Brown file id ("ca01"), "file.jsonl:17", "notes.txt#3"
  std::string category;  // Brown genre ("news"), or the source file for user corpora
  std::string text;      // UTF-8 plain text; paragraphs separated by "\n\n"
};

}  // namespace dipaco
