#include "data/text_corpus.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <optional>
#include <system_error>

#include "data/gzip_reader.h"
#include "data/json_reader.h"
#include "util/atomic_file.h"
#include "util/progress.h"

namespace dipaco {
namespace {

namespace fs = std::filesystem;

// Extensions match in any case: "NOTES.TXT", "c4.JSONL.GZ" (lowercase `suffix`).
bool ends_with(const std::string& s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  const size_t from = s.size() - suffix.size();
  for (size_t i = 0; i < suffix.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[from + i]);
    if (std::tolower(c) != static_cast<unsigned char>(suffix[i])) return false;
  }
  return true;
}

bool is_blank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
}

std::string trim(std::string_view s) {
  size_t begin = s.find_first_not_of(" \t\r\n\f\v");
  if (begin == std::string_view::npos) return {};
  size_t end = s.find_last_not_of(" \t\r\n\f\v");
  return std::string(s.substr(begin, end - begin + 1));
}

}  // namespace

// Not ".json": documents_from_jsonl reads one object per line, and a .json file is most often one
// JSON document (an array, pretty-printed over many lines) that it would refuse line by line.
// ".json.gz" stays: C4 ships JSON lines under that name.
bool is_corpus_file(const std::string& path) {
  return ends_with(path, ".txt") || ends_with(path, ".jsonl") || ends_with(path, ".jsonl.gz") ||
         ends_with(path, ".json.gz");
}

Result<std::vector<std::string>> corpus_files(const std::string& path) {
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) return not_found(path + ": no such file or directory");
  if (!fs::is_directory(status)) {
    if (ends_with(path, ".json")) {
      return invalid_argument(path +
                              ": a .json file is not read (one JSON document, not one per "
                              "line); write one object per line with a \"text\" field, as "
                              ".jsonl");
    }
    if (!is_corpus_file(path)) {
      return invalid_argument(path +
                              ": unsupported corpus file type (expected .txt, .jsonl, "
                              ".jsonl.gz or .json.gz, or a directory of them)");
    }
    return std::vector<std::string>{path};
  }
  std::vector<std::string> files;
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && is_corpus_file(it->path().string())) {
      files.push_back(it->path().string());
    }
  }
  if (ec) return io_error(path + ": cannot list directory: " + ec.message());
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    return not_found(path + ": directory has no .txt, .jsonl, .jsonl.gz or .json.gz files");
  }
  return files;
}

std::vector<Document> documents_from_txt(const std::string& text, const std::string& name,
                                         TxtMode mode) {
  std::vector<Document> documents;
  if (mode == TxtMode::kFile) {
    if (!is_blank(text)) documents.push_back({name, name, trim(text)});
    return documents;
  }
  // Blocks: runs of non-blank lines; the lines of a block keep their newlines.
  std::string block;
  size_t pos = 0;
  auto flush = [&] {
    if (!is_blank(block)) {
      documents.push_back({name + "#" + std::to_string(documents.size() + 1), name, trim(block)});
    }
    block.clear();
  };
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (is_blank(line)) {
      flush();
    } else {
      if (!block.empty()) block.push_back('\n');
      block.append(line);
    }
  }
  flush();
  return documents;
}

Result<std::vector<Document>> documents_from_jsonl(const std::string& text,
                                                   const std::string& name) {
  // The text must be a string; an id or category stored as a number keeps its digits.
  static const std::vector<JsonFieldRequest> kKeys = {{"text", NonStringField::kError},
                                                      {"id", NonStringField::kNumberAsText},
                                                      {"category", NonStringField::kNumberAsText}};
  std::vector<Document> documents;
  size_t pos = 0;
  uint64_t line_number = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (is_blank(line)) continue;
    std::string where = name + ":" + std::to_string(line_number) + ": ";
    auto fields = parse_json_fields(line, kKeys);
    if (!fields.is_ok())
      return fields.status().with_context(name + ":" + std::to_string(line_number));
    auto& values = fields.value();
    if (!values[0]) return invalid_argument(where + "no \"text\" field");
    if (is_blank(*values[0])) continue;
    Document document;
    document.text = std::move(*values[0]);
    document.id = values[1] ? std::move(*values[1]) : name + ":" + std::to_string(line_number);
    document.category = values[2] ? std::move(*values[2]) : name;
    documents.push_back(std::move(document));
  }
  return documents;
}

Result<std::vector<Document>> read_corpus(const std::vector<std::string>& paths,
                                          const CorpusOptions& options) {
  if (paths.empty()) return invalid_argument("no corpus paths given");
  std::vector<std::string> files;
  for (const auto& path : paths) {
    DIPACO_ASSIGN_OR_RETURN(auto found, corpus_files(path));
    files.insert(files.end(), found.begin(), found.end());
  }
  std::vector<Document> documents;
  std::optional<Progress> progress;
  if (options.show_progress) progress.emplace("reading corpus", 0, "docs");
  for (const auto& file : files) {
    std::string text;
    if (ends_with(file, ".gz")) {
      DIPACO_ASSIGN_OR_RETURN(text, read_gzip_file(file));
    } else {
      DIPACO_ASSIGN_OR_RETURN(text, read_file(file));
    }
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);  // a UTF-8 byte order mark
    std::vector<Document> found;
    if (ends_with(file, ".txt")) {
      found = documents_from_txt(text, file, options.txt_mode);
    } else {
      DIPACO_ASSIGN_OR_RETURN(found, documents_from_jsonl(text, file));
    }
    for (auto& d : found) documents.push_back(std::move(d));
    if (progress) progress->update(documents.size());
  }
  if (progress) progress->finish();
  if (documents.empty()) {
    std::string what = paths.size() == 1 ? paths[0] : std::to_string(paths.size()) + " paths";
    return invalid_argument("corpus " + what + " has no documents (all files are empty)");
  }
  return documents;
}

}  // namespace dipaco
