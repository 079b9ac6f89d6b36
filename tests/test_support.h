// Small helpers shared by the Qt Test executables.
#pragma once

#include <string_view>

namespace dipaco::test {

// True when `part` occurs in `text` (error-message checks).
inline bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

}  // namespace dipaco::test

// The dipaco binary links gRPC's protobuf; under AddressSanitizer it cannot load SentencePiece
// (that needs RTLD_DEEPBIND, which ASan refuses), even when the test process itself can. Tests
// that make the binary read or train a tokenizer skip there, saying why.
#if defined(__SANITIZE_ADDRESS__)
#define DIPACO_SKIP_IF_CLI_CANNOT_LOAD_SENTENCEPIECE()                                     \
  QSKIP(                                                                                   \
      "the dipaco binary loads gRPC's protobuf; SentencePiece needs RTLD_DEEPBIND, which " \
      "AddressSanitizer refuses")
#else
#define DIPACO_SKIP_IF_CLI_CANNOT_LOAD_SENTENCEPIECE() \
  do {                                                 \
  } while (false)
#endif
