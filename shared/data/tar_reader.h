// Reading the regular files of a (ustar / pax) tar archive held in memory, as npm packs them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace dipaco {

struct TarEntry {
  std::string path;  // as stored, e.g. "package/ca01"
  std::string data;
};

// Regular files of the archive, in archive order. Directories, links and pax/GNU metadata
// records are skipped (a pax "path" record renames the entry that follows). Errors name the
// archive and the byte offset of the bad header: "x.tgz: tar header at byte 5120: bad checksum".
Result<std::vector<TarEntry>> read_tar(std::string_view archive, const std::string& name);

}  // namespace dipaco
