#include "run_cache_files.h"

#include <cctype>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "util/atomic_file.h"

namespace dipaco {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kRunPrefix = "run-";

// "run-R.module-..." / "run-R.shard-..." -> "R"; "" for other names.
std::string run_of_cached_file(std::string_view name) {
  if (!name.starts_with(kRunPrefix)) return {};
  name.remove_prefix(kRunPrefix.size());
  const size_t dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos) return {};
  const std::string_view rest = name.substr(dot);
  if (!rest.starts_with(".module-") && !rest.starts_with(".shard-")) return {};
  return std::string(name.substr(0, dot));
}

constexpr std::string_view kConfigRecordSuffix = ".config-sha256";

fs::path config_record(const std::string& cache_dir, const std::string& run_id) {
  return fs::path(cache_dir) / "runs" /
         (std::string(kRunPrefix) + run_id + std::string(kConfigRecordSuffix));
}

}  // namespace

fs::path run_state_dir(const std::string& cache_dir, const std::string& run_id) {
  return fs::path(cache_dir) / "state" / (std::string(kRunPrefix) + run_id);
}

std::set<std::string> runs_in_cache(const std::string& cache_dir) {
  std::set<std::string> runs;
  std::error_code ec;
  for (const char* folder : {"modules", "shards"}) {
    for (fs::directory_iterator it(fs::path(cache_dir) / folder, ec), end; !ec && it != end;
         it.increment(ec)) {
      std::string run = run_of_cached_file(it->path().filename().string());
      if (!run.empty()) runs.insert(std::move(run));
    }
  }
  for (fs::directory_iterator it(fs::path(cache_dir) / "state", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > kRunPrefix.size() && name.starts_with(kRunPrefix))
      runs.insert(name.substr(kRunPrefix.size()));
  }
  for (fs::directory_iterator it(fs::path(cache_dir) / "runs", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string file_name = it->path().filename().string();
    std::string_view name = file_name;
    if (name.size() > kRunPrefix.size() + kConfigRecordSuffix.size() &&
        name.starts_with(kRunPrefix) && name.ends_with(kConfigRecordSuffix)) {
      name.remove_prefix(kRunPrefix.size());
      name.remove_suffix(kConfigRecordSuffix.size());
      runs.insert(std::string(name));
    }
  }
  return runs;
}

RemovedRunFiles remove_run_files(const std::string& cache_dir, const std::string& run_id) {
  RemovedRunFiles removed;
  if (run_id.empty()) return removed;
  std::vector<fs::path> files;
  std::error_code ec;
  for (const char* folder : {"modules", "shards"}) {
    for (fs::directory_iterator it(fs::path(cache_dir) / folder, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (run_of_cached_file(it->path().filename().string()) == run_id) files.push_back(it->path());
    }
  }
  if (fs::exists(config_record(cache_dir, run_id), ec))
    files.push_back(config_record(cache_dir, run_id));
  const fs::path state = run_state_dir(cache_dir, run_id);
  for (fs::recursive_directory_iterator it(state, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  for (const fs::path& file : files) {
    std::error_code size_error, remove_error;
    const uint64_t size = fs::file_size(file, size_error);
    if (!fs::remove(file, remove_error)) continue;
    ++removed.files;
    if (!size_error) removed.bytes += size;
  }
  fs::remove_all(state, ec);  // the emptied directories
  return removed;
}

Result<ClaimedRunFiles> claim_run_files(const std::string& cache_dir, const std::string& run_id,
                                        const std::string& config_sha256) {
  ClaimedRunFiles claimed;
  const fs::path record = config_record(cache_dir, run_id);
  std::error_code ec;
  if (fs::exists(record, ec)) {
    auto text = read_file(record.string());  // unreadable: another run's, as an empty record
    if (text.is_ok()) claimed.previous_config_sha256 = std::move(text).value();
    while (!claimed.previous_config_sha256.empty() &&
           std::isspace(static_cast<unsigned char>(claimed.previous_config_sha256.back())))
      claimed.previous_config_sha256.pop_back();
    if (claimed.previous_config_sha256 == config_sha256) return claimed;
    claimed.replaced = true;
    claimed.removed = remove_run_files(cache_dir, run_id);
  }
  // No record: nothing cached yet, or files an older worker kept before records existed. Those
  // are adopted as this run's (what that worker assumed), so an upgrade mid-run keeps the
  // optimizer state.
  fs::create_directories(record.parent_path(), ec);
  if (ec) return io_error(record.parent_path().string() + ": cannot create: " + ec.message());
  DIPACO_RETURN_IF_ERROR(write_file_atomically(record.string(), config_sha256 + "\n"));
  return claimed;
}

}  // namespace dipaco
