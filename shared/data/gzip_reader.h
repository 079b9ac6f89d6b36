// Decompressing gzip data (.jsonl.gz corpora, npm .tgz packages) with zlib.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace dipaco {

// Inflates gzip data (one or more concatenated members, as `cat a.gz b.gz` gives). `name`
// names the source in errors: "x.jsonl.gz: truncated gzip data: stream ends after 1234
// compressed bytes", "x.jsonl.gz: corrupt gzip data at compressed byte 567: invalid distance".
Result<std::string> gunzip(std::string_view compressed, const std::string& name);

// Reads and inflates a whole .gz file.
Result<std::string> read_gzip_file(const std::string& path);

}  // namespace dipaco
