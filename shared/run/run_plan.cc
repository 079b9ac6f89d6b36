#include "run/run_plan.h"

#include <filesystem>
#include <sstream>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "data/token_file.h"
#include "model/model.h"
#include "run/module_files.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace dipaco {

namespace {

// Version 0 of every module.
Status write_initial_modules(const GridSpec& grid, const RunLayout& layout, bool have_base,
                             RunSpec* spec) {
  ParamLayout pl(grid.model);
  std::vector<float> init;
  auto initial = [&]() -> Result<std::vector<float>> {
    if (grid.warm_start && have_base) {
      DIPACO_ASSIGN_OR_RETURN(auto base, read_path_model(layout.base_model()));
      return std::move(base.second);
    }
    CpuBackend backend(1);
    DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Model> model,
                            Model::create(&backend, grid.model, 1, 1));
    model->init_params(grid.seed);
    return model->get_params();
  };
  for (int id = 0; id < grid.num_modules(); ++id) {
    const auto mid = static_cast<uint32_t>(id);
    ModuleSpec m;
    m.module_id = mid;
    m.level = static_cast<uint32_t>(grid.module_level(id));
    m.index = static_cast<uint32_t>(grid.module_index(id));
    m.initial_checkpoint = layout.module_version(mid, 0);
    std::error_code ec;
    std::filesystem::create_directories(layout.module_dir(mid), ec);
    if (ec) return io_error(layout.module_dir(mid) + ": cannot create: " + ec.message());
    if (std::filesystem::exists(m.initial_checkpoint)) {
      DIPACO_ASSIGN_OR_RETURN(m.initial_sha256, sha256_file_hex(m.initial_checkpoint));
    } else {
      if (init.empty()) {
        DIPACO_ASSIGN_OR_RETURN(init, initial());
      }
      ParamRange r = grid.module_range(pl, id);
      std::span<const float> slice(init.data() + r.offset, r.count);
      DIPACO_ASSIGN_OR_RETURN(m.initial_sha256,
                              write_module_version(m.initial_checkpoint, mid, 0, slice));
    }
    spec->modules.push_back(std::move(m));
  }
  return Status::ok();
}

// The "section.key = value" lines of a grid's identity, in order; the tables of
// [[grid.level]] are numbered from 0 ("grid.level[1].modules").
std::vector<std::pair<std::string, std::string>> identity_entries(const GridSpec& grid) {
  std::vector<std::pair<std::string, std::string>> entries;
  std::istringstream lines(run_identity(grid));
  std::string line, section;
  int levels = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("[[", 0) == 0) {
      section = line.substr(2, line.find("]]") - 2) + "[" + std::to_string(levels++) + "]";
    } else if (line[0] == '[') {
      section = line.substr(1, line.find(']') - 1);
    } else if (const size_t eq = line.find(" = "); eq != std::string::npos) {
      entries.emplace_back(section + "." + line.substr(0, eq), line.substr(eq + 3));
    }
  }
  return entries;
}

// Everything but the run identity of a fresh start goes if its planning fails, so that the
// directory is not claimed by a grid that never ran (the next start may use another grid).
void remove_failed_start(const RunLayout& layout, RunDirLock& run_dir_lock) {
  std::error_code ignored;
  for (const std::string& file :
       {layout.grid(), layout.base_model(), layout.router(), layout.routing_json()}) {
    std::filesystem::remove(file, ignored);
  }
  std::filesystem::remove_all(layout.shards_dir(), ignored);
  std::filesystem::remove_all(layout.dir + "/modules", ignored);
  for (const std::string& empty : {layout.payload_dir(), layout.state_dir(), layout.paths_dir()}) {
    std::filesystem::remove(empty, ignored);  // only when empty
  }
  run_dir_lock.release_leaving_nothing();
}

Result<PlannedRun> plan_claimed_run(PlannedRun planned, int threads, FILE* out, Backend* compute);

std::string grid_request_id(const GridSpec& grid) {
  return "dipaco-run:" + sha256_hex(run_identity(grid)).substr(0, 32);
}

}  // namespace

// Resolves the vocabulary from the training data; checks the validation file agrees.
Result<GridSpec> resolve_grid_vocabulary(const GridSpec& input) {
  GridSpec grid = input;
  auto train = TokenFile::open(grid.train_tokens);
  if (!train.is_ok()) {
    return Status(train.status().code(), "data.train: " + train.status().message() +
                                             " (write token files with 'dipaco data tokenize')");
  }
  if (grid.vocab_from_data) {
    grid.model.vocab_size = static_cast<int>(train->vocab_size());
  } else if (static_cast<uint32_t>(grid.model.vocab_size) < train->vocab_size()) {
    return invalid_argument("model.vocab_size " + std::to_string(grid.model.vocab_size) +
                            " is smaller than the vocabulary of " + grid.train_tokens);
  }
  if (!grid.val_tokens.empty()) {
    auto val = TokenFile::open(grid.val_tokens);
    if (!val.is_ok()) return val.status().with_context("data.val");
    if (val->vocab_size() > static_cast<uint32_t>(grid.model.vocab_size))
      return invalid_argument("data.val " + grid.val_tokens + " has a larger vocabulary");
  }
  return grid;
}

std::string run_identity(const GridSpec& grid) {
  GridSpec g = grid;
  g.workers = 1;
  g.threads = 0;
  return g.to_toml();
}

std::string describe_grid_differences(const GridSpec& in_run, const GridSpec& now) {
  const auto before = identity_entries(in_run);
  const auto after = identity_entries(now);
  auto value_in = [](const auto& entries, const std::string& key) -> std::string {
    for (const auto& [k, v] : entries) {
      if (k == key) return v;
    }
    return "absent";
  };
  std::string differences;
  auto add = [&](const std::string& key, const std::string& was, const std::string& is) {
    if (was == is) return;
    if (!differences.empty()) differences += "; ";
    differences += key + ": " + was + " in the run, " + is + " now";
  };
  for (const auto& [key, value] : before) add(key, value, value_in(after, key));
  for (const auto& [key, value] : after) {
    if (value_in(before, key) == "absent") add(key, "absent", value);
  }
  return differences;
}

Result<PlannedRun> plan_grid_run(const GridSpec& input, int threads, FILE* out,
                                 RunDirLock& run_dir_lock, Backend* compute) {
  if (!run_dir_lock.lock.held())
    return internal_error("planning into run.dir " + input.dir + " without holding its lock");
  PlannedRun planned;
  auto resolved = resolve_grid_vocabulary(input);
  if (!resolved.is_ok()) {
    if (!std::filesystem::exists(RunLayout{input.dir}.grid()))
      run_dir_lock.release_leaving_nothing();
    return resolved.status();
  }
  planned.grid = std::move(resolved).value();
  const GridSpec& grid = planned.grid;
  planned.layout = RunLayout{grid.dir};
  const RunLayout& layout = planned.layout;
  if (std::filesystem::exists(layout.grid())) {
    DIPACO_ASSIGN_OR_RETURN(std::string existing_text, read_file(layout.grid()));
    auto existing = parse_grid_spec(existing_text, layout.grid());
    if (!existing.is_ok()) {
      return failed_precondition("run.dir " + grid.dir +
                                 " holds a grid.toml that cannot be read (" +
                                 existing.status().message() +
                                 "); use another run.dir, or delete the directory to start over");
    }
    if (run_identity(*existing) != run_identity(grid)) {
      return failed_precondition(
          "run.dir " + grid.dir + " holds a run of a different grid (" +
          describe_grid_differences(*existing, grid) +
          "); a resumed run must use the same values (only run.workers and run.threads may "
          "change): use another run.dir, or delete the directory to start over");
    }
    std::fprintf(out, "resuming the run in %s\n", grid.dir.c_str());
    planned.resumed = true;
    return plan_claimed_run(std::move(planned), threads, out, compute);
  }
  auto fresh = plan_claimed_run(std::move(planned), threads, out, compute);
  if (!fresh.is_ok()) remove_failed_start(RunLayout{input.dir}, run_dir_lock);
  return fresh;
}

namespace {

// Creates the directories, writes grid.toml (the directory now belongs to this grid), routes
// the shards and writes version 0 of the modules.
Result<PlannedRun> plan_claimed_run(PlannedRun planned, int threads, FILE* out, Backend* compute) {
  const GridSpec& grid = planned.grid;
  const RunLayout& layout = planned.layout;
  std::error_code ec;
  std::filesystem::create_directories(layout.payload_dir(), ec);
  std::filesystem::create_directories(layout.state_dir(), ec);
  std::filesystem::create_directories(layout.paths_dir(), ec);
  if (ec) return io_error(grid.dir + ": cannot create the run directory: " + ec.message());
  DIPACO_RETURN_IF_ERROR(write_file_atomically(layout.grid(), grid.to_toml()));
  ParamLayout pl(grid.model);
  const int P = grid.num_paths();
  std::fprintf(out,
               "grid %s: %d levels, %d modules, %d paths x %d shards; path %zu parameters; "
               "H = %u, %llu outer steps, outer %s lr %g, compression %s\n",
               grid.name.c_str(), static_cast<int>(grid.levels.size()), grid.num_modules(), P,
               grid.shards_per_path, pl.total(), grid.inner_steps,
               static_cast<unsigned long long>(grid.outer_steps),
               outer_optimizer_name(grid.outer.kind), static_cast<double>(grid.outer.lr),
               wire_dtype_name(grid.dtype));
  std::fflush(out);

  if (compute != nullptr) {
    DIPACO_ASSIGN_OR_RETURN(planned.shards, prepare_shards(grid, layout, compute, out));
  } else {
    DIPACO_ASSIGN_OR_RETURN(planned.shards, prepare_shards(grid, layout, threads, out));
  }
  const ShardPlan& plan = planned.shards;
  for (size_t s = 0; s < plan.shard_tokens.size(); ++s) {
    std::fprintf(out, "shard %zu: %llu documents, %llu tokens\n", s,
                 static_cast<unsigned long long>(plan.shard_documents[s]),
                 static_cast<unsigned long long>(plan.shard_tokens[s]));
  }

  RunSpec& spec = planned.spec;
  spec.name = grid.name;
  spec.request_id = grid_request_id(grid);
  spec.outer_steps = grid.outer_steps;
  spec.inner_steps = grid.inner_steps;
  spec.lease_timeout_ms = 120000;
  spec.config = grid.to_toml();

  DIPACO_RETURN_IF_ERROR(write_initial_modules(grid, layout, plan.have_base, &spec));
  for (int p = 0; p < P; ++p) {
    PathSpec path;
    path.path_id = static_cast<uint32_t>(p);
    for (int id : grid.path_modules(p)) path.module_ids.push_back(static_cast<uint32_t>(id));
    for (int r = 0; r < grid.shards_per_path; ++r) {
      auto shard = static_cast<uint32_t>(p * grid.shards_per_path + r);
      path.shards.push_back({shard, plan.shard_tokens[shard]});
    }
    spec.paths.push_back(std::move(path));
  }

  return planned;
}

}  // namespace

}  // namespace dipaco
