#include "data/documents_file.h"

#include "data/checksum.h"
#include "data/json_writer.h"
#include "util/atomic_file.h"

namespace dipaco {

Status write_documents_jsonl(const std::string& path, const std::vector<Document>& documents) {
  DIPACO_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(path));
  std::string line;
  for (const auto& document : documents) {
    line = "{\"id\":" + json_quote(document.id) + ",\"category\":" + json_quote(document.category) +
           ",\"text\":" + json_quote(document.text) + "}\n";
    DIPACO_RETURN_IF_ERROR(file.write(line));
  }
  return file.commit();
}

uint64_t documents_hash(const std::vector<Document>& documents) {
  uint64_t hash = kFnvOffset;
  const std::string_view separator("\0", 1);
  for (const auto& document : documents) {
    hash = fnv1a64(document.id, hash);
    hash = fnv1a64(separator, hash);
    hash = fnv1a64(document.category, hash);
    hash = fnv1a64(separator, hash);
    hash = fnv1a64(document.text, hash);
    hash = fnv1a64(separator, hash);
  }
  return hash;
}

}  // namespace dipaco
