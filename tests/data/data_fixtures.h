// Helpers that build data-pipeline fixtures inside a test's QTemporaryDir.
#pragma once

#include <zlib.h>

#include <QTemporaryDir>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace fixtures {

// gzip-compresses `data` (one member).
inline std::string gzip(const std::string& data) {
  z_stream stream{};
  deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&stream, data.size()) + 64, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// A ustar archive of regular files (path, contents).
inline std::string tar(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string out;
  for (const auto& [path, data] : files) {
    char header[512] = {};
    std::snprintf(header, 100, "%s", path.c_str());
    std::snprintf(header + 100, 8, "%07o", 0644);
    std::snprintf(header + 108, 8, "%07o", 0);
    std::snprintf(header + 116, 8, "%07o", 0);
    std::snprintf(header + 124, 12, "%011o", static_cast<unsigned>(data.size()));
    std::snprintf(header + 136, 12, "%011o", 0);
    header[156] = '0';
    std::memcpy(header + 257,
                "ustar\0"
                "00",
                8);
    std::memset(header + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : header) sum += c;
    std::snprintf(header + 148, 8, "%06o", sum);
    out.append(header, 512);
    out += data;
    out.append((512 - data.size() % 512) % 512, '\0');
  }
  out.append(1024, '\0');
  return out;
}

inline void write(const QString& path, const std::string& bytes) {
  FILE* f = std::fopen(path.toStdString().c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

// A tiny Brown "Form C" file.
inline const char* brown_form_c() {
  return "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ./.\n"
         "\tIt/pps asked/vbd (/( again/rb )/) ,/, and/cc 1/2/cd cups/nns ;/. why/wrb ?/.\n"
         "\n\n\tMerger/nn-hl proposed/vbn-hl\n"
         "\tHowever/rb ,/, the/at city's/nn$ mayor/nn didn't/dod* agree/vb :/: no/rb !/.\n";
}

}  // namespace fixtures
