#include "run/module_aggregator.h"

#include <algorithm>
#include <filesystem>

#include "compress/codec.h"
#include "compress/quantized_delta.h"
#include "run/module_delta.h"
#include "run/module_files.h"
#include "util/sha256.h"

namespace dipaco {

ModuleOuterSettings module_outer_settings(const GridSpec& grid, int module_id) {
  if (module_is_path_specific(grid, module_id))
    return {default_outer_config(OuterOptimizerKind::kSgd), AggregationOptions{}};
  return {grid.outer, grid.aggregation};
}

Result<ModuleOuterStepResult> replace_with_path_parameters(std::span<float> theta,
                                                           std::span<const ModuleReport> reports,
                                                           uint64_t round, uint64_t module_id,
                                                           std::vector<float>* scratch) {
  const size_t n = theta.size();
  scratch->resize(n);
  ModuleOuterStepResult result;
  // Checks the reports (sizes, finite values, duplicates) and gives the summary and the norm of
  // θ − (the new version).
  DIPACO_ASSIGN_OR_RETURN(
      result.aggregation,
      aggregate_outer_gradient(theta, reports, AggregationOptions{}, round, module_id, *scratch));
  auto trained = [&](const ModuleReport& r, size_t i) {
    return r.kind == ModuleReport::Kind::kParams ? r.values[i] : theta[i] - r.values[i];
  };
  if (reports.size() == 1) {
    for (size_t i = 0; i < n; ++i) theta[i] = trained(reports[0], i);
  } else {
    // Several shards of the path (DiLoCo replicas): their parameters' weighted mean.
    std::vector<float>& mean = *scratch;
    std::fill(mean.begin(), mean.end(), 0.0f);
    for (const ModuleReport& r : reports) {
      const auto c = static_cast<float>(r.shard_size / result.aggregation.total_weight);
      for (size_t i = 0; i < n; ++i) mean[i] += c * trained(r, i);
    }
    std::copy(mean.begin(), mean.end(), theta.begin());
  }
  result.stepped = true;
  return result;
}

ModuleAggregator::ModuleAggregator(const GridSpec& grid, RunLayout layout, Coordinator* coordinator,
                                   int64_t run_id)
    : grid_(grid),
      layout_(std::move(layout)),
      params_(grid.model),
      coordinator_(coordinator),
      run_id_(run_id) {}

Result<AggregationOutcome> ModuleAggregator::apply(const AggregationDecision& d) {
  const int id = static_cast<int>(d.module_id);
  if (id < 0 || id >= grid_.num_modules())
    return invalid_argument("aggregation for unknown module " + std::to_string(d.module_id));
  const ParamRange range = grid_.module_range(params_, id);
  const std::string base_file = layout_.module_version(d.module_id, d.outer_step);
  DIPACO_ASSIGN_OR_RETURN(std::vector<float> theta,
                          read_module_version(base_file, d.module_id, range.count));

  AggregationOutcome out;
  out.module_id = d.module_id;
  out.new_version = d.outer_step + 1;
  // Reports in shard order, whatever order they arrived in: the sum, and so the new version,
  // depends only on what was reported (a run with more workers, or over the network, gives the
  // same modules bit for bit).
  std::vector<const GradientReport*> ordered;
  for (const GradientReport& r : d.reports) ordered.push_back(&r);
  std::sort(ordered.begin(), ordered.end(), [](const GradientReport* a, const GradientReport* b) {
    return a->shard_id < b->shard_id;
  });
  std::vector<std::vector<float>> decoded(d.reports.size());
  std::vector<ModuleReport> reports;
  for (size_t i = 0; i < ordered.size(); ++i) {
    const GradientReport& r = *ordered[i];
    DIPACO_ASSIGN_OR_RETURN(std::string payload, coordinator_->read_gradient(r));
    out.bytes_up += payload.size();
    decoded[i].resize(range.count);
    std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(payload.data()),
                                   payload.size());
    // θ_p of a path-specific module, or an outer gradient (a shared module's, or one of a worker
    // that predates per-module dtypes).
    const ReportEncoding encoding = report_encoding(grid_, id, range.count, payload.size())
                                        .value_or(ReportEncoding{module_wire_dtype(grid_, id)});
    if (Status s = decode_into(bytes, encoding.dtype, decoded[i]); !s) {
      return s.with_context("module " + std::to_string(d.module_id) + " outer step " +
                            std::to_string(d.outer_step) + ", lease " + std::to_string(r.lease_id));
    }
    ModuleReport report;
    report.path_id = r.shard_id;  // unique per module per round (a path may have several shards)
    report.path = r.path_id;
    report.kind = encoding.params ? ModuleReport::Kind::kParams : ModuleReport::Kind::kOuterGrad;
    report.values = decoded[i];
    report.shard_size = static_cast<double>(std::max<uint64_t>(1, r.shard_tokens));
    reports.push_back(report);
  }

  const ModuleOuterSettings settings = module_outer_settings(grid_, id);
  const AggregationOptions& options = settings.aggregation;
  DIPACO_ASSIGN_OR_RETURN(OuterOptimizer optimizer,
                          OuterOptimizer::create(settings.optimizer, range.count));
  std::vector<float> downlink_residual;  // empty: zeros
  if (d.outer_step > 0) {
    const std::string previous = layout_.outer_state(d.module_id, d.outer_step);
    if (std::filesystem::exists(previous)) {
      DIPACO_ASSIGN_OR_RETURN(OuterOptimizerState state,
                              read_outer_state(previous, &downlink_residual));
      DIPACO_RETURN_IF_ERROR(optimizer.load_state(std::move(state)).with_context(previous));
    }
  }
  // A path-specific module's version goes down whole (fp32): no downlink residual for it.
  const WireDtype downlink = module_downlink_dtype(grid_, id);
  const bool quantized_downlink = downlink != WireDtype::kFp32;
  if (!quantized_downlink) downlink_residual.clear();
  std::vector<float> base;
  if (quantized_downlink) base = theta;
  if (!reports.empty() && module_is_path_specific(grid_, id)) {
    DIPACO_ASSIGN_OR_RETURN(out.step, replace_with_path_parameters(theta, reports, d.outer_step,
                                                                   d.module_id, &scratch_));
  } else if (!reports.empty()) {
    DIPACO_ASSIGN_OR_RETURN(out.step, module_outer_step(theta, reports, options, d.outer_step,
                                                        d.module_id, &optimizer, &scratch_));
  }
  // With a quantized downlink the version published is the one workers rebuild from the delta
  // (module_delta.h), not the optimizer's target; the difference is fed back next round.
  ModuleDelta delta;
  if (quantized_downlink) {
    const std::vector<float> target = std::move(theta);
    if (Status s = publish_quantized_step(downlink, base, target, &downlink_residual,
                                          &delta.payload, &theta);
        !s) {
      return s.with_context("module " + std::to_string(d.module_id) + " outer step " +
                            std::to_string(d.outer_step) + " downlink delta");
    }
  }
  DIPACO_RETURN_IF_ERROR(write_outer_state(layout_.outer_state(d.module_id, out.new_version),
                                           optimizer.state(), downlink_residual));
  const std::string file = layout_.module_version(d.module_id, out.new_version);
  DIPACO_ASSIGN_OR_RETURN(std::string sha,
                          write_module_version(file, d.module_id, out.new_version, theta));
  if (quantized_downlink) {
    delta.module_id = d.module_id;
    delta.version = out.new_version;
    delta.dtype = downlink;
    delta.num_params = range.count;
    DIPACO_ASSIGN_OR_RETURN(delta.base_sha256, sha256_file_hex(base_file));
    delta.target_sha256 = sha;
    delta.target_params_sha256 = params_sha256_hex(theta);
    DIPACO_RETURN_IF_ERROR(
        write_module_delta(layout_.module_delta(d.module_id, out.new_version), delta));
    out.delta_bytes = delta.payload.size();
  }
  DIPACO_RETURN_IF_ERROR(
      coordinator_->complete_aggregation(run_id_, d.module_id, d.outer_step, file, sha));
  return out;
}

}  // namespace dipaco
