#include "export/path_chooser.h"

#include <algorithm>
#include <cmath>

#include "algo/grid_spec.h"
#include "export/run_source.h"
#include "routing/router.h"
#include "tensor/safetensors.h"

namespace dipaco {

namespace {

class FixedPathChooser final : public PathChooser {
 public:
  explicit FixedPathChooser(int id) : id_(id) {}
  Result<int> choose(std::span<const int32_t>) override { return id_; }
  Result<int> choose_at(std::span<const int32_t>, size_t) override { return id_; }
  std::string describe() const override { return "fixed path " + std::to_string(id_); }

 private:
  int id_;
};

class RouterPathChooser final : public PathChooser {
 public:
  RouterPathChooser(const OpenedExport& ex, Router router, std::unique_ptr<Model> base)
      : ex_(ex), router_(std::move(router)), base_(std::move(base)) {}

  Result<int> choose(std::span<const int32_t> prefix) override {
    if (prefix.empty()) return invalid_argument("cannot route an empty document");
    std::vector<float> x = prefix_features(*base_, prefix, router_.prefix_tokens);
    for (float v : x)
      if (!std::isfinite(v))
        return data_loss(ex_.router.base_checkpoint +
                         ": the router's base model gives non-finite features");
    int id = router_.route(x.data());
    if (ex_.find_path(id) == nullptr)
      return not_found("the router sends this document to path " + std::to_string(id) +
                       ", which is not in the export (its paths: " + ex_.path_ids() +
                       "); export it too, or choose with --path ID");
    return id;
  }
  Result<int> choose_at(std::span<const int32_t> doc, size_t point) override {
    point = std::min(point, doc.size());
    const size_t n = std::min<size_t>(point, static_cast<size_t>(router_.prefix_tokens));
    return choose(doc.subspan(point - n, n));
  }
  int reroute_every() const override { return router_.reroute_every; }
  std::string describe() const override {
    return std::string(routing_method_name(router_.method)) + " router over " +
           std::to_string(router_.clusters) + " paths, first " +
           std::to_string(router_.prefix_tokens) + " tokens";
  }

 private:
  OpenedExport ex_;
  Router router_;
  std::unique_ptr<Model> base_;
};

Result<std::unique_ptr<Model>> load_base_model(const std::string& file, Backend* backend,
                                               int prefix_tokens) {
  DIPACO_ASSIGN_OR_RETURN(SafetensorsFile st, SafetensorsFile::open(file));
  auto it = st.metadata().find("model_config");
  if (it == st.metadata().end())
    return data_loss(file + ": metadata has no \"model_config\"; not a dipaco model file");
  auto config = ModelConfig::parse(it->second);
  if (!config.is_ok()) return config.status().with_context(file + ": model_config");
  if (prefix_tokens < 1 || prefix_tokens > config->max_seq_len)
    return data_loss(file + ": the router's prefix of " + std::to_string(prefix_tokens) +
                     " tokens does not fit the base model's max_seq_len " +
                     std::to_string(config->max_seq_len));
  DIPACO_ASSIGN_OR_RETURN(std::vector<float> params, read_path_params(file, *config));
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                          Model::create(backend, *config, 1, prefix_tokens));
  model->set_params(params);
  return model;
}

}  // namespace

std::vector<float> prefix_features(Model& base, std::span<const int32_t> tokens,
                                   int prefix_tokens) {
  const int C = base.config().d_model;
  const int T = prefix_tokens;
  const int len = static_cast<int>(std::min<size_t>(tokens.size(), static_cast<size_t>(T)));
  // Padded to the full prefix like compute_span_features: attention is causal, so the padding
  // does not change the first len positions.
  std::vector<int32_t> inputs(static_cast<size_t>(T), 0);
  std::copy(tokens.begin(), tokens.begin() + len, inputs.begin());
  base.forward(inputs.data(), nullptr, 1, T);
  std::vector<float> hidden = base.get_final_hidden();
  std::vector<float> out(static_cast<size_t>(C), 0.0f);
  for (int t = 0; t < len; ++t)
    for (int c = 0; c < C; ++c) out[c] += hidden[static_cast<size_t>(t) * C + c];
  for (int c = 0; c < C; ++c) out[c] /= static_cast<float>(len);
  return out;
}

Result<std::unique_ptr<PathChooser>> make_path_chooser(const OpenedExport& ex,
                                                       std::optional<int> path, Backend* backend) {
  if (path) {
    if (ex.find_path(*path) == nullptr)
      return not_found(ex.dir + ": the export has no path " + std::to_string(*path) +
                       " (its paths: " + ex.path_ids() + ")");
    return std::unique_ptr<PathChooser>(new FixedPathChooser(*path));
  }
  if (ex.paths.size() == 1)
    return std::unique_ptr<PathChooser>(new FixedPathChooser(ex.paths[0].id));
  if (ex.router.file.empty() || ex.router.base_checkpoint.empty())
    return failed_precondition(ex.dir + ": the export has " + std::to_string(ex.paths.size()) +
                               " paths (" + ex.path_ids() +
                               ") and no router with its base "
                               "model (router kind '" +
                               ex.router.kind + "'); choose one with --path ID");
  DIPACO_ASSIGN_OR_RETURN(Router router, load_router(ex.router.file));
  DIPACO_ASSIGN_OR_RETURN(
      std::unique_ptr<Model> base,
      load_base_model(ex.router.base_checkpoint, backend, router.prefix_tokens));
  if (router.d != static_cast<size_t>(base->config().d_model))
    return data_loss(ex.router.file + ": the router reads " + std::to_string(router.d) +
                     " features but the base model " + ex.router.base_checkpoint + " has d_model " +
                     std::to_string(base->config().d_model));
  return std::unique_ptr<PathChooser>(
      new RouterPathChooser(ex, std::move(router), std::move(base)));
}

}  // namespace dipaco
