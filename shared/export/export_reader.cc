#include "export/export_reader.h"

#include <filesystem>

#include "export/export_run.h"
#include "export/json_value.h"
#include "util/atomic_file.h"

namespace dipaco {

namespace fs = std::filesystem;

const ExportedPath* OpenedExport::find_path(int id) const {
  for (const auto& p : paths)
    if (p.id == id) return &p;
  return nullptr;
}

std::string OpenedExport::path_ids() const {
  std::string s;
  for (const auto& p : paths) s += (s.empty() ? "" : ", ") + std::to_string(p.id);
  return s;
}

Result<OpenedExport> open_export(const std::string& dir) {
  OpenedExport ex;
  ex.dir = dir;
  std::error_code ec;
  const fs::path root(dir);
  const std::string manifest = (root / "dipaco.json").string();
  if (!fs::exists(manifest, ec)) {
    if (!fs::exists(root / "config.json", ec))
      return not_found(dir +
                       ": neither dipaco.json (an export) nor config.json (a Hugging Face "
                       "model directory) found; run 'dipaco export' first");
    ex.tokenizer = (root / "tokenizer.model").string();
    ex.paths.push_back({0, dir});
    return ex;
  }
  DIPACO_ASSIGN_OR_RETURN(std::string text, read_file(manifest));
  auto parsed = parse_json(text);
  if (!parsed.is_ok()) return parsed.status().with_context(manifest);
  const JsonValue& j = *parsed;
  auto err = [&](const std::string& key, const std::string& what) {
    return data_loss(manifest + ": " + key + ": " + what);
  };
  if (const JsonValue* f = j.find("format"); f == nullptr || f->as_string() != kExportFormat)
    return err("format", std::string("expected \"") + kExportFormat + "\"");
  const JsonValue* tok = j.find("tokenizer");
  const JsonValue* tok_file = tok != nullptr ? tok->find("file") : nullptr;
  if (tok_file == nullptr || tok_file->as_string().empty()) return err("tokenizer.file", "missing");
  ex.tokenizer = (root / tok_file->as_string()).string();
  const JsonValue* paths = j.find("paths");
  if (paths == nullptr || !paths->is_array()) return err("paths", "expected an array");
  for (size_t i = 0; i < paths->items().size(); ++i) {
    const JsonValue& p = paths->items()[i];
    const JsonValue* id = p.find("id");
    const JsonValue* hf = p.find("hf");
    std::string where = "paths[" + std::to_string(i) + "]";
    if (id == nullptr || !id->is_number()) return err(where + ".id", "expected a number");
    if (hf == nullptr || !hf->is_string())
      return err(where + ".hf",
                 "missing: this export has no Hugging Face directory for the "
                 "path (export again with --format hf)");
    ex.paths.push_back({static_cast<int>(id->as_number()), (root / hf->as_string()).string()});
  }
  if (ex.paths.empty()) return err("paths", "the export has no paths");
  if (const JsonValue* r = j.find("router"); r != nullptr && r->is_object()) {
    if (const JsonValue* v = r->find("kind")) ex.router.kind = v->as_string();
    if (const JsonValue* v = r->find("file"); v != nullptr && v->is_string())
      ex.router.file = (root / v->as_string()).string();
    if (const JsonValue* v = r->find("base_checkpoint"); v != nullptr && v->is_string())
      ex.router.base_checkpoint = (root / v->as_string()).string();
    if (const JsonValue* v = r->find("prefix_tokens"))
      ex.router.prefix_tokens = static_cast<int>(v->as_number());
    if (const JsonValue* v = r->find("reroute_every"))
      ex.router.reroute_every = static_cast<int>(v->as_number());
  }
  return ex;
}

Result<std::unique_ptr<Model>> load_path_model(Backend* backend, const ExportedPath& path) {
  DIPACO_ASSIGN_OR_RETURN(HfExport hf, load_hf_export(path.hf_dir));
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                          Model::create(backend, hf.config, 1, hf.config.max_seq_len));
  model->set_params(hf.params);
  return model;
}

}  // namespace dipaco
