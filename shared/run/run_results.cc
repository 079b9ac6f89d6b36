#include "run/run_results.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "data/json_writer.h"
#include "run/module_files.h"
#include "run/round_traffic.h"
#include "tensor/safetensors.h"
#include "util/atomic_file.h"
#include "util/human_units.h"

namespace dipaco {

// The whole model of a path at `version` (all its modules at that version).
Result<std::vector<float>> assemble_path(const GridSpec& grid, const RunLayout& layout,
                                         const ParamLayout& pl, int path, uint64_t version) {
  std::vector<float> params(pl.total());
  for (int id : grid.path_modules(path)) {
    ParamRange r = grid.module_range(pl, id);
    DIPACO_ASSIGN_OR_RETURN(
        std::vector<float> m,
        read_module_version(layout.module_version(static_cast<uint32_t>(id), version),
                            static_cast<uint32_t>(id), r.count));
    std::copy(m.begin(), m.end(), params.begin() + static_cast<std::ptrdiff_t>(r.offset));
  }
  return params;
}

PathEvaluator::PathEvaluator(const GridSpec& grid, const RunLayout& layout)
    : grid_(grid), layout_(layout), pl_(grid.model) {}

Status PathEvaluator::init(int threads) {
  own_backend_ = std::make_unique<CpuBackend>(threads);
  return init(own_backend_.get());
}

Status PathEvaluator::init(Backend* backend) {
  DIPACO_ASSIGN_OR_RETURN(model_, Model::create(backend, grid_.model, kBatch, grid_.inner.seq_len));
  for (int p = 0; p < grid_.num_paths(); ++p) {
    const std::string file = layout_.val_shard(static_cast<uint32_t>(p));
    if (!std::filesystem::exists(file)) {
      val_.push_back(nullptr);
      scored_.emplace_back();
      continue;
    }
    DIPACO_ASSIGN_OR_RETURN(TokenFile f, TokenFile::open(file));
    if (grid_.routing.reroute_every > 0) {
      DIPACO_ASSIGN_OR_RETURN(ScoredPredictions scored,
                              read_val_predictions(grid_, layout_, static_cast<uint32_t>(p), f));
      scored_.emplace_back(std::move(scored));
    } else {
      scored_.emplace_back();
    }
    val_.push_back(std::make_unique<TokenFile>(std::move(f)));
  }
  best_.assign(val_.size(), NAN);
  best_sum_.assign(val_.size(), EvalSum{});
  best_step_.assign(val_.size(), 0);
  // A resumed run continues from the models it kept (and their validation results).
  for (size_t p = 0; p < val_.size(); ++p) {
    const std::string file = layout_.path_model(static_cast<uint32_t>(p));
    if (!std::filesystem::exists(file)) continue;
    // Files without the kept result (another tool wrote them) are simply re-evaluated.
    auto kept = SafetensorsFile::open(file);
    if (!kept.is_ok()) continue;
    auto tokens = kept->metadata_uint("val_tokens");
    auto step = kept->metadata_uint("outer_step");
    auto sum = kept->metadata().find("val_loss_sum");
    if (!tokens.is_ok() || !step.is_ok() || sum == kept->metadata().end()) continue;
    best_sum_[p].loss_sum = std::strtod(sum->second.c_str(), nullptr);
    best_sum_[p].tokens = *tokens;
    best_step_[p] = *step;
    if (val_[p] && best_sum_[p].tokens > 0) best_[p] = best_sum_[p].mean();
  }
  return Status::ok();
}

Result<EvalSum> PathEvaluator::evaluate(uint64_t version, std::vector<double>* losses) {
  EvalSum routed;
  losses->assign(val_.size(), NAN);
  const auto max_tokens = static_cast<uint64_t>(grid_.eval_max_tokens);
  for (size_t p = 0; p < val_.size(); ++p) {
    DIPACO_ASSIGN_OR_RETURN(std::vector<float> params,
                            assemble_path(grid_, layout_, pl_, static_cast<int>(p), version));
    bool keep = !grid_.keep_best || !val_[p];
    if (val_[p]) {
      model_->set_params(params);
      EvalSum s =
          evaluate_documents(*model_, *val_[p], max_tokens, scored_[p] ? &*scored_[p] : nullptr);
      routed += s;
      (*losses)[p] = s.mean();
      if (std::isnan(best_[p]) || s.mean() < best_[p] || !grid_.keep_best) {
        best_[p] = s.mean();
        best_sum_[p] = s;
        best_step_[p] = version;
        keep = true;
      }
    }
    if (keep) {
      if (!val_[p]) best_step_[p] = version;
      std::map<std::string, std::string> kept = {
          {"outer_step", std::to_string(best_step_[p])},
          {"val_loss_sum", format_double("%.17g", best_sum_[p].loss_sum)},
          {"val_tokens", std::to_string(best_sum_[p].tokens)}};
      DIPACO_RETURN_IF_ERROR(write_path_model(layout_.path_model(static_cast<uint32_t>(p)),
                                              grid_.model, static_cast<uint32_t>(p), params, kept));
    }
  }
  return routed;
}

Result<LocalRunResult> write_run_results(const GridSpec& grid, const RunLayout& layout,
                                         const ShardPlan& plan, const PathEvaluator& evaluator,
                                         const std::map<uint32_t, double>& last_train_loss,
                                         FILE* out, double seconds,
                                         const MeasuredTraffic* measured) {
  LocalRunResult result;
  result.seconds = seconds;
  const ParamLayout pl(grid.model);
  const int P = grid.num_paths();
  // Results: paths, traffic (measured, or derived from the grid so that a resumed run reports
  // the whole run), run.json, summary.md.
  result.outer_steps = grid.outer_steps;
  // The routed loss of the models the run keeps (each path's best version with keep_best):
  // what an export of paths/ scores on the same validation documents.
  EvalSum kept;
  for (const EvalSum& s : evaluator.best_sum()) kept += s;
  result.routed_val_loss = kept.mean();
  result.routed_val_tokens = kept.tokens;
  const RoundTraffic per_round = round_traffic(grid, pl);
  result.bytes_up = measured != nullptr ? measured->up : per_round.up * grid.outer_steps;
  result.bytes_down =
      measured != nullptr ? measured->down : run_bytes_down(per_round, grid.outer_steps);
  result.bytes_path_local = per_round.path_local * grid.outer_steps;
  result.data_parallel_bytes = per_round.data_parallel * grid.outer_steps;
  result.tokens = per_round.tokens * grid.outer_steps;
  for (int p = 0; p < P; ++p) {
    PathResult r;
    r.path_id = static_cast<uint32_t>(p);
    r.modules = grid.path_modules(p);
    for (int s = 0; s < grid.shards_per_path; ++s) {
      r.shard_documents += plan.shard_documents[static_cast<size_t>(p * grid.shards_per_path + s)];
      r.shard_tokens += plan.shard_tokens[static_cast<size_t>(p * grid.shards_per_path + s)];
    }
    r.val_tokens = plan.val_tokens[static_cast<size_t>(p)];
    r.val_loss = evaluator.best()[static_cast<size_t>(p)];
    r.val_outer_step = evaluator.best_step()[static_cast<size_t>(p)];
    auto trained = last_train_loss.find(r.path_id);
    r.train_loss = trained != last_train_loss.end() ? trained->second : NAN;
    result.paths.push_back(std::move(r));
  }

  std::ostringstream j;
  auto num = [](double v) {
    return std::isnan(v) ? std::string("null") : format_double("%.6f", v);
  };
  // Absolute, so that `dipaco export RUN` finds them from any directory: the grid's paths are
  // relative to the directory the run was started in.
  auto absolute = [](const std::string& path) {
    return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
  };
  j << "{\n  \"format\": \"dipaco-run/1\",\n  \"name\": " << json_quote(grid.name)
    << ",\n  \"model\": " << json_quote(grid.model.to_string())
    << ",\n  \"tokenizer\": " << json_quote(absolute(grid.tokenizer))
    << ",\n  \"data\": {\"train\": " << json_quote(absolute(grid.train_tokens))
    << ", \"val\": " << json_quote(absolute(grid.val_tokens))
    << "},\n  \"grid\": \"grid.toml\",\n  \"outer_steps\": " << grid.outer_steps
    << ",\n  \"routed_val_loss\": " << num(result.routed_val_loss) << ",\n  \"paths\": [";
  for (size_t p = 0; p < result.paths.size(); ++p) {
    const PathResult& r = result.paths[p];
    j << (p ? "," : "") << "\n    {\"id\": " << r.path_id << ", \"modules\": [";
    for (size_t i = 0; i < r.modules.size(); ++i) j << (i ? ", " : "") << r.modules[i];
    j << "], \"shard_documents\": " << r.shard_documents << ", \"shard_tokens\": " << r.shard_tokens
      << ", \"val_tokens\": " << r.val_tokens << ", \"val_loss\": " << num(r.val_loss)
      << ", \"val_outer_step\": " << r.val_outer_step << ", \"checkpoint\": \"paths/path-"
      << r.path_id << ".safetensors\"}";
  }
  const bool have_router = std::filesystem::exists(layout.router());
  j << "\n  ],\n  \"router\": {\"kind\": "
    << json_quote(have_router ? routing_method_name(grid.routing.method) : "none")
    << ", \"file\": " << (have_router ? "\"router.safetensors\"" : "null")
    << ", \"base_checkpoint\": " << (plan.have_base ? "\"base.safetensors\"" : "null")
    << ", \"prefix_tokens\": " << grid.routing.prefix_tokens
    << ", \"reroute_every\": " << grid.routing.reroute_every
    << "},\n  \"traffic\": {\"bytes_up\": " << result.bytes_up
    << ", \"bytes_down\": " << result.bytes_down
    << ", \"bytes_path_local\": " << result.bytes_path_local
    << ", \"data_parallel_bytes\": " << result.data_parallel_bytes
    << ", \"downlink\": " << json_quote(wire_dtype_name(grid.downlink))
    << ", \"counted\": " << (measured != nullptr ? "\"measured\"" : "\"estimated\"")
    << "},\n  \"tokens\": " << result.tokens << ",\n  \"dipaco_version\": \"" << DIPACO_VERSION
    << "\"\n}\n";
  DIPACO_RETURN_IF_ERROR(write_file_atomically(layout.run_json(), j.str()));

  std::ostringstream md;
  md << "# " << grid.name << "\n\n| path | modules | shard docs | shard tokens | val tokens | "
     << "val loss | val ppl | best at outer step |\n|---|---|---|---|---|---|---|---|\n";
  for (const PathResult& r : result.paths) {
    std::string mods;
    for (int m : r.modules) mods += (mods.empty() ? "" : ",") + std::to_string(m);
    md << "| " << r.path_id << " | " << mods << " | " << r.shard_documents << " | "
       << r.shard_tokens << " | " << r.val_tokens << " | "
       << (std::isnan(r.val_loss) ? "-" : format_double("%.4f", r.val_loss)) << " | "
       << (std::isnan(r.val_loss) ? "-" : format_double("%.2f", std::exp(r.val_loss))) << " | "
       << r.val_outer_step << " |\n";
  }
  const uint64_t wire = result.bytes_up + result.bytes_down;
  md << "\nrouted validation loss " << format_double("%.4f", result.routed_val_loss)
     << " (perplexity " << format_double("%.2f", std::exp(result.routed_val_loss)) << ") over "
     << result.routed_val_tokens
     << " tokens\n\ntraffic: " << human_bytes(static_cast<double>(result.bytes_up)) << " up, "
     << human_bytes(static_cast<double>(result.bytes_down)) << " down; data parallel for the same "
     << result.tokens << " tokens: " << human_bytes(static_cast<double>(result.data_parallel_bytes))
     << " ("
     << format_double("%.0f", wire ? static_cast<double>(result.data_parallel_bytes) / wire : 0.0)
     << "x more)\n";
  DIPACO_RETURN_IF_ERROR(write_file_atomically(layout.summary(), md.str()));
  std::fprintf(out, "\n%s\nwrote %s, %s and paths/ in %s (%.0f s)\n", md.str().c_str(),
               layout.summary().c_str(), layout.run_json().c_str(), grid.dir.c_str(),
               result.seconds);
  return result;
}

}  // namespace dipaco
