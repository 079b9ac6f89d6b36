#include "export/export_run.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "export/hf_llama.h"
#include "export/json_value.h"
#include "export/run_source.h"
#include "spm/sentencepiece_library.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace dipaco {

namespace fs = std::filesystem;

namespace {

std::string id_list(const std::vector<RunPath>& paths) {
  std::string s;
  for (const auto& p : paths) s += (s.empty() ? "" : ", ") + std::to_string(p.id);
  return s.empty() ? "none" : s;
}

Result<std::vector<const RunPath*>> select_paths(const RunSource& run,
                                                 const std::vector<int>& ids) {
  std::vector<const RunPath*> out;
  if (ids.empty()) {
    for (const auto& p : run.paths)
      if (p.finished) out.push_back(&p);
    if (out.empty())
      return failed_precondition(run.dir +
                                 ": the run has no finished paths (paths: " + id_list(run.paths) +
                                 "; none has its checkpoint file yet). Export after 'dipaco run' "
                                 "has finished at least one path.");
    return out;
  }
  for (int id : ids) {
    const RunPath* p = run.find_path(id);
    if (p == nullptr)
      return not_found(run.dir + ": the run has no path " + std::to_string(id) +
                       " (its paths: " + id_list(run.paths) + ")");
    if (!p->finished)
      return failed_precondition(run.dir + ": path " + std::to_string(id) +
                                 " is not finished (no checkpoint at " +
                                 (p->checkpoint.empty() ? "(none)" : p->checkpoint) + ")");
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

// Size and SHA-256 of a data file (token files up to kHashLimit; larger ones by size only, so
// exporting a run on a large corpus does not read it all).
constexpr uintmax_t kHashLimit = uintmax_t{1} << 30;

JsonValue file_identity(const std::string& path) {
  JsonValue j = JsonValue::object();
  j.set("file", JsonValue::string(path));
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec) {
    j.set("missing", JsonValue::boolean(true));
    return j;
  }
  j.set("bytes", JsonValue::number(static_cast<double>(size)));
  if (size <= kHashLimit) {
    auto hash = sha256_file_hex(path);
    if (hash.is_ok()) j.set("sha256", JsonValue::string(*hash));
  }
  return j;
}

// The SHA-256 of a file just written into the export, for the manifest.
Result<JsonValue> written_hash(const std::string& dir, const std::string& name) {
  DIPACO_ASSIGN_OR_RETURN(std::string hash, sha256_file_hex((fs::path(dir) / name).string()));
  return JsonValue::string(hash);
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Status copy_into(const std::string& from, const std::string& to) {
  DIPACO_ASSIGN_OR_RETURN(std::string bytes, read_file(from));
  return write_file_atomically(to, bytes);
}

// Removes a temporary directory unless released.
class TempDirGuard {
 public:
  explicit TempDirGuard(std::string dir) : dir_(std::move(dir)) {}
  ~TempDirGuard() {
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
  void release() { dir_.clear(); }

 private:
  std::string dir_;
};

Status write_export(const RunSource& run, const std::vector<const RunPath*>& paths,
                    const SentencePieceModel& tokenizer, const std::string& dir,
                    const ExportOptions& options, ExportSummary* summary) {
  auto note = [&](const std::string& file) {
    summary->files.push_back(file);
    if (options.log != nullptr) std::fprintf(options.log, "  wrote %s\n", file.c_str());
  };
  DIPACO_RETURN_IF_ERROR(
      write_file_atomically((fs::path(dir) / "tokenizer.model").string(), tokenizer.serialized()));
  note("tokenizer.model");

  JsonValue manifest = JsonValue::object();
  manifest.set("format", JsonValue::string(kExportFormat));
  manifest.set("dipaco_version", JsonValue::string(DIPACO_VERSION));
  manifest.set("created_utc", JsonValue::string(utc_now()));
  JsonValue source = JsonValue::object();
  source.set("kind", JsonValue::string(run.kind));
  source.set("name", JsonValue::string(run.name));
  source.set("dir", JsonValue::string(fs::absolute(run.dir).lexically_normal().string()));
  if (!run.dipaco_version.empty())
    source.set("dipaco_version", JsonValue::string(run.dipaco_version));
  if (!run.manifest.empty()) {
    auto parsed = parse_json(run.manifest);
    if (parsed.is_ok()) source.set("run_json", *parsed);
  }
  if (!run.grid.empty() && fs::is_regular_file(run.grid)) {
    DIPACO_RETURN_IF_ERROR(copy_into(run.grid, (fs::path(dir) / "grid.toml").string()));
    source.set("grid", JsonValue::string("grid.toml"));
    note("grid.toml");
  }
  manifest.set("source", source);
  manifest.set("model", JsonValue::string(run.model.to_string()));
  JsonValue tok = JsonValue::object();
  tok.set("file", JsonValue::string("tokenizer.model"));
  tok.set("source", JsonValue::string(run.tokenizer));
  tok.set("vocab_size", JsonValue::number(tokenizer.vocab_size()));
  tok.set("sha256", JsonValue::string(sha256_hex(tokenizer.serialized())));
  manifest.set("tokenizer", tok);
  JsonValue data = JsonValue::object();
  if (!run.train_data.empty()) data.set("train", file_identity(run.train_data));
  if (!run.val_data.empty()) data.set("val", file_identity(run.val_data));
  manifest.set("data", data);
  JsonValue formats = JsonValue::array();
  if (options.hf) formats.push(JsonValue::string("hf"));
  if (options.gguf) formats.push(JsonValue::string("gguf"));
  manifest.set("formats", formats);
  if (options.gguf) manifest.set("gguf_type", JsonValue::string(gguf_type_name(options.gguf_type)));

  JsonValue path_list = JsonValue::array();
  for (const RunPath* p : paths) {
    DIPACO_ASSIGN_OR_RETURN(std::vector<float> params, read_path_params(p->checkpoint, run.model));
    const std::string id = std::to_string(p->id);
    JsonValue entry = JsonValue::object();
    entry.set("id", JsonValue::number(p->id));
    JsonValue modules = JsonValue::array();
    for (int m : p->modules) modules.push(JsonValue::number(m));
    entry.set("modules", modules);
    entry.set("shard_documents", p->shard_documents >= 0
                                     ? JsonValue::number(static_cast<double>(p->shard_documents))
                                     : JsonValue::null());
    entry.set("shard_tokens", p->shard_tokens >= 0
                                  ? JsonValue::number(static_cast<double>(p->shard_tokens))
                                  : JsonValue::null());
    entry.set("val_loss", p->val_loss ? JsonValue::number(*p->val_loss) : JsonValue::null());
    entry.set("source_checkpoint", JsonValue::string(p->checkpoint));
    entry.set("params_sha256",
              JsonValue::string(sha256_hex(std::string_view(
                  reinterpret_cast<const char*>(params.data()), params.size() * sizeof(float)))));
    JsonValue files = JsonValue::object();
    if (options.hf) {
      std::string sub = "path-" + id;
      std::string hf_dir = (fs::path(dir) / sub).string();
      std::error_code ec;
      fs::create_directory(hf_dir, ec);
      if (ec) return io_error(hf_dir + ": cannot create: " + ec.message());
      DIPACO_RETURN_IF_ERROR(write_hf_llama_dir(hf_dir, run.model, params, &tokenizer));
      note(sub + "/");
      entry.set("hf", JsonValue::string(sub));
      DIPACO_ASSIGN_OR_RETURN(JsonValue hash, written_hash(dir, sub + "/model.safetensors"));
      files.set(sub + "/model.safetensors", hash);
    }
    if (options.gguf) {
      std::string file = "path-" + id + ".gguf";
      DIPACO_RETURN_IF_ERROR(write_gguf_llama((fs::path(dir) / file).string(), run.model, params,
                                              tokenizer, options.gguf_type,
                                              run.name + " path " + id));
      note(file);
      entry.set("gguf", JsonValue::string(file));
      DIPACO_ASSIGN_OR_RETURN(JsonValue hash, written_hash(dir, file));
      files.set(file, hash);
    }
    entry.set("sha256", files);
    path_list.push(entry);
    summary->path_ids.push_back(p->id);
  }
  manifest.set("paths", path_list);

  JsonValue router = JsonValue::object();
  router.set("kind", JsonValue::string(run.router.kind));
  router.set("prefix_tokens", JsonValue::number(run.router.prefix_tokens));
  router.set("reroute_every", JsonValue::number(run.router.reroute_every));
  router.set("file", JsonValue::null());
  router.set("base_checkpoint", JsonValue::null());
  if (!run.router.file.empty()) {
    Status s = copy_into(run.router.file, (fs::path(dir) / "router.safetensors").string());
    if (!s) return s.with_context("router file");
    router.set("file", JsonValue::string("router.safetensors"));
    router.set("source_file", JsonValue::string(run.router.file));
    note("router.safetensors");
  }
  if (!run.router.base_checkpoint.empty()) {
    Status s =
        copy_into(run.router.base_checkpoint, (fs::path(dir) / "router-base.safetensors").string());
    if (!s) return s.with_context("router base checkpoint");
    router.set("base_checkpoint", JsonValue::string("router-base.safetensors"));
    router.set("source_base_checkpoint", JsonValue::string(run.router.base_checkpoint));
    note("router-base.safetensors");
  }
  if (run.router.kind != "none") {
    DIPACO_RETURN_IF_ERROR(
        write_file_atomically((fs::path(dir) / "router.json").string(), router.dump()));
    note("router.json");
  }
  manifest.set("router", router);
  DIPACO_RETURN_IF_ERROR(
      write_file_atomically((fs::path(dir) / "dipaco.json").string(), manifest.dump()));
  note("dipaco.json");
  return Status::ok();
}

// What --force may replace: an earlier export (a directory whose dipaco.json has the export
// format) or an empty directory. Anything else (a user's directory, a file) is refused: one
// mistyped --out must not delete it.
Status check_replaceable(const fs::path& out) {
  std::error_code ec;
  if (fs::is_directory(fs::symlink_status(out, ec))) {
    if (fs::is_empty(out, ec) && !ec) return Status::ok();
    auto text = read_file((out / "dipaco.json").string());
    if (text.is_ok()) {
      auto manifest = parse_json(*text);
      const JsonValue* format = manifest.is_ok() ? manifest->find("format") : nullptr;
      if (format != nullptr && format->as_string() == kExportFormat) return Status::ok();
    }
  }
  return failed_precondition(out.string() +
                             ": exists and is not a dipaco export (no dipaco.json of format "
                             "\"" +
                             kExportFormat +
                             "\"); --force replaces only an earlier export or an empty "
                             "directory: choose another --out, or remove it yourself");
}

}  // namespace

Result<ExportSummary> export_run(const std::string& run_dir, const std::string& out_dir,
                                 const ExportOptions& options) {
  if (!options.hf && !options.gguf) return invalid_argument("no export format selected");
  DIPACO_ASSIGN_OR_RETURN(RunSource run, open_run(run_dir, options.tokenizer));
  DIPACO_ASSIGN_OR_RETURN(std::vector<const RunPath*> paths, select_paths(run, options.path_ids));
  if (run.tokenizer.empty())
    return failed_precondition(run_dir +
                               ": the run names no tokenizer; pass --tokenizer FILE.model");
  auto tokenizer = SentencePieceModel::load_file(run.tokenizer);
  if (!tokenizer.is_ok())
    return tokenizer.status().with_context(
        "tokenizer (pass --tokenizer FILE.model to use another)");
  if (tokenizer->vocab_size() != run.model.vocab_size)
    return invalid_argument(
        run.tokenizer + ": the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
        " pieces but the model's vocab_size is " + std::to_string(run.model.vocab_size));

  // The destination: refuse to clobber, check the parent is writable before any work.
  fs::path out = fs::path(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  std::error_code ec;
  const bool out_exists = fs::exists(fs::symlink_status(out, ec));
  if (out_exists && !options.force)
    return failed_precondition(out.string() +
                               ": already exists; choose another --out or pass --force to "
                               "replace it (an earlier export only)");
  if (out_exists) DIPACO_RETURN_IF_ERROR(check_replaceable(out));
  fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec))
    return not_found(out.string() + ": the parent directory " + parent.string() +
                     " does not exist");
  std::string pattern = (parent / ("." + out.filename().string() + ".tmp-XXXXXX")).string();
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr)
    return io_error(out.string() + ": cannot write in " + parent.string() + ": " +
                    std::strerror(errno));
  std::string temp = buf.data();
  TempDirGuard guard(temp);

  ExportSummary summary;
  summary.out_dir = out.string();
  DIPACO_RETURN_IF_ERROR(write_export(run, paths, *tokenizer, temp, options, &summary));

  std::string old;
  if (fs::exists(out, ec)) {
    old = temp + ".old";
    fs::rename(out, old, ec);
    if (ec) return io_error(out.string() + ": cannot move the old export aside: " + ec.message());
  }
  fs::rename(temp, out, ec);
  if (ec) {
    if (!old.empty()) fs::rename(old, out, ec);
    return io_error(out.string() +
                    ": cannot rename the finished export into place: " + ec.message());
  }
  guard.release();
  if (!old.empty()) fs::remove_all(old, ec);
  fs::permissions(out,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  ec);
  DIPACO_RETURN_IF_ERROR(fsync_directory(parent.string()));
  return summary;
}

}  // namespace dipaco
