#include "algo/module_aggregation.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <string>

#include "data/shuffle.h"

namespace dipaco {
namespace {

std::string path_name(const ModuleReport& r) {
  return "path " + std::to_string(r.path_id);
}

// Index of the first non-finite value, or n.
size_t first_non_finite(const float* v, size_t n) {
  int32_t worst = 0;
  for (size_t i = 0; i < n; ++i) {
    int32_t b = std::bit_cast<int32_t>(v[i]) & 0x7fffffff;
    worst = b > worst ? b : worst;
  }
  if (worst < 0x7f800000) return n;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i])) return i;
  }
  return n;
}

Status check_report(const ModuleReport& r, size_t n) {
  if (r.values.size() != n) {
    return invalid_argument(
        path_name(r) + " reported " + std::to_string(r.values.size()) +
        (r.kind == ModuleReport::Kind::kParams ? " parameters" : " outer-gradient values") +
        " for a module of " + std::to_string(n) + " parameters");
  }
  if (!(std::isfinite(r.shard_size) && r.shard_size > 0)) {
    return invalid_argument(path_name(r) + " has shard size " + std::to_string(r.shard_size) +
                            ": it must be > 0 (an empty shard should not report)");
  }
  size_t bad = first_non_finite(r.values.data(), n);
  if (bad != n) {
    return invalid_argument(path_name(r) + " reported a non-finite value at index " +
                            std::to_string(bad) + " (" + std::to_string(r.values[bad]) +
                            "): its training diverged");
  }
  return Status::ok();
}

}  // namespace

bool outer_gradient_dropped(const AggregationOptions& options, uint64_t round, uint64_t module_id,
                            int64_t path_id) {
  if (options.drop_fraction <= 0) return false;
  uint64_t h = mix_seed(mix_seed(options.drop_seed, round),
                        mix_seed(module_id, static_cast<uint64_t>(path_id)));
  double u = static_cast<double>(h >> 11) * 0x1.0p-53;  // uniform in [0, 1)
  return u < options.drop_fraction;
}

Result<AggregationSummary> aggregate_outer_gradient(std::span<const float> theta,
                                                    std::span<const ModuleReport> reports,
                                                    const AggregationOptions& options,
                                                    uint64_t round, uint64_t module_id,
                                                    std::span<float> out) {
  size_t n = theta.size();
  if (out.size() != n) {
    return invalid_argument("outer-gradient buffer of " + std::to_string(out.size()) +
                            " values for a module of " + std::to_string(n) + " parameters");
  }
  if (!(options.drop_fraction >= 0 && options.drop_fraction < 1)) {
    return invalid_argument("drop fraction must be in [0, 1), got " +
                            std::to_string(options.drop_fraction));
  }
  if (reports.empty()) {
    return invalid_argument("module " + std::to_string(module_id) +
                            " has no path reports for round " + std::to_string(round));
  }
  std::vector<int64_t> ids;
  ids.reserve(reports.size());
  for (const ModuleReport& r : reports) {
    DIPACO_RETURN_IF_ERROR(check_report(r, n));
    ids.push_back(r.path_id);
  }
  std::sort(ids.begin(), ids.end());
  auto dup = std::adjacent_find(ids.begin(), ids.end());
  if (dup != ids.end()) {
    return invalid_argument("path " + std::to_string(*dup) + " reported twice for module " +
                            std::to_string(module_id) + " in round " + std::to_string(round));
  }
  if (first_non_finite(theta.data(), n) != n) {
    return invalid_argument("module " + std::to_string(module_id) +
                            " has non-finite global parameters");
  }

  AggregationSummary summary;
  for (const ModuleReport& r : reports) {
    if (outer_gradient_dropped(options, round, module_id, r.path_id)) {
      ++summary.dropped;
    } else {
      ++summary.kept;
      summary.total_weight += r.shard_size;
      summary.kept_paths.push_back(r.path_id);
    }
  }
  std::fill(out.begin(), out.end(), 0.0f);
  if (summary.kept == 0) return summary;
  std::vector<int64_t> kept_paths;
  for (const ModuleReport& r : reports) {
    if (!outer_gradient_dropped(options, round, module_id, r.path_id))
      kept_paths.push_back(r.path >= 0 ? r.path : r.path_id);
  }
  std::sort(kept_paths.begin(), kept_paths.end());
  summary.kept_path_count =
      static_cast<size_t>(std::unique(kept_paths.begin(), kept_paths.end()) - kept_paths.begin());
  summary.scale =
      options.rescale_by_sqrt_paths ? std::sqrt(static_cast<double>(summary.kept_path_count)) : 1;

  float* o = out.data();
  const float* t = theta.data();
  for (const ModuleReport& r : reports) {
    if (outer_gradient_dropped(options, round, module_id, r.path_id)) continue;
    float c = static_cast<float>(summary.scale * r.shard_size / summary.total_weight);
    const float* v = r.values.data();
    if (r.kind == ModuleReport::Kind::kParams) {
      for (size_t i = 0; i < n; ++i) o[i] += c * (t[i] - v[i]);
    } else {
      for (size_t i = 0; i < n; ++i) o[i] += c * v[i];
    }
  }
  double sq = 0;
  for (size_t i = 0; i < n; ++i) sq += static_cast<double>(o[i]) * o[i];
  summary.outer_grad_norm = std::sqrt(sq);
  return summary;
}

}  // namespace dipaco
