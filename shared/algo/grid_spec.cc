#include "algo/grid_spec.h"

#include <limits>
#include <sstream>

#include "train/run_config.h"
#include "util/atomic_file.h"
#include "util/toml_table.h"

namespace dipaco {

namespace {

constexpr int kMaxPaths = 4096;

Status read_levels(const toml::table& root, GridSpec* g) {
  const toml::node* grid = root.get("grid");
  if (grid == nullptr) return Status::ok();
  const toml::table* t = grid->as_table();
  if (t == nullptr) return invalid_argument("'grid' must be a table ([grid])");
  toml::table scalars;
  const toml::array* levels = nullptr;
  for (const auto& [k, v] : *t) {
    if (k.str() == "level") {
      levels = v.as_array();
      if (levels == nullptr) return invalid_argument("grid.level must be an array of tables");
    } else {
      scalars.insert(k, v);
    }
  }
  DIPACO_RETURN_IF_ERROR(read_toml_keys(
      scalars, "grid", {toml_int("shards_per_path", &g->shards_per_path, 1, kMaxPaths)}));
  if (levels == nullptr) return Status::ok();
  g->levels.clear();
  for (size_t i = 0; i < levels->size(); ++i) {
    std::string where = "grid.level[" + std::to_string(i) + "]";
    const toml::table* lt = levels->get(i)->as_table();
    if (lt == nullptr) return invalid_argument(where + " must be a table ([[grid.level]])");
    GridLevel level;
    level.modules = 0;  // 0 = not given
    bool have_blocks = false;
    toml::table rest;
    for (const auto& [k, v] : *lt) {
      if (k.str() != "blocks") {
        rest.insert(k, v);
        continue;
      }
      const toml::array* b = v.as_array();
      if (b == nullptr || b->size() != 2 || !b->get(0)->is_integer() || !b->get(1)->is_integer())
        return invalid_argument(where + ".blocks must be [first, last] (two block indices)");
      level.first_block = static_cast<int>(b->get(0)->value<int64_t>().value_or(-1));
      level.last_block = static_cast<int>(b->get(1)->value<int64_t>().value_or(-1));
      have_blocks = true;
    }
    DIPACO_RETURN_IF_ERROR(read_toml_keys(rest, where,
                                          {toml_int("modules", &level.modules, 1, kMaxPaths),
                                           toml_bool("path_specific", &level.path_specific)}));
    if (!have_blocks) return invalid_argument(where + ".blocks is required ([first, last])");
    if (level.modules == 0 && !level.path_specific) level.modules = 1;
    g->levels.push_back(level);
  }
  return Status::ok();
}

}  // namespace

const char* routing_method_name(RoutingMethod method) {
  switch (method) {
    case RoutingMethod::kKMeans: return "kmeans";
    case RoutingMethod::kProductKMeans: return "product_kmeans";
    case RoutingMethod::kDiscriminative: return "discriminative";
    case RoutingMethod::kRandom: return "random";
  }
  return "?";
}

Result<RoutingMethod> parse_routing_method(std::string_view name) {
  if (name == "kmeans") return RoutingMethod::kKMeans;
  if (name == "product_kmeans") return RoutingMethod::kProductKMeans;
  if (name == "discriminative") return RoutingMethod::kDiscriminative;
  if (name == "random" || name == "iid") return RoutingMethod::kRandom;
  return invalid_argument(
      "routing.method must be one of kmeans, product_kmeans, discriminative, "
      "random (iid), got '" +
      std::string(name) + "'");
}

int GridSpec::num_paths() const {
  long long paths = 1;
  for (const GridLevel& l : levels)
    if (!l.path_specific) paths = std::min<long long>(paths * std::max(l.modules, 1), 1LL << 40);
  return static_cast<int>(std::min<long long>(paths, std::numeric_limits<int>::max()));
}

int GridSpec::num_modules() const {
  int paths = num_paths(), n = 0;
  for (const GridLevel& l : levels) n += l.path_specific ? paths : l.modules;
  return n;
}

std::vector<int> GridSpec::path_modules(int path) const {
  std::vector<int> ids(levels.size());
  int paths = num_paths();
  // Mixed radix over the shared levels, level 0 most significant.
  int rest = path;
  std::vector<int> digit(levels.size(), 0);
  for (size_t l = levels.size(); l-- > 0;) {
    if (levels[l].path_specific) continue;
    digit[l] = rest % levels[l].modules;
    rest /= levels[l].modules;
  }
  int base = 0;
  for (size_t l = 0; l < levels.size(); ++l) {
    ids[l] = base + (levels[l].path_specific ? path : digit[l]);
    base += levels[l].path_specific ? paths : levels[l].modules;
  }
  return ids;
}

int GridSpec::module_level(int module_id) const {
  int paths = num_paths(), base = 0;
  for (size_t l = 0; l < levels.size(); ++l) {
    int k = levels[l].path_specific ? paths : levels[l].modules;
    if (module_id < base + k) return static_cast<int>(l);
    base += k;
  }
  return -1;
}

int GridSpec::module_index(int module_id) const {
  int paths = num_paths(), base = 0;
  for (const GridLevel& l : levels) {
    int k = l.path_specific ? paths : l.modules;
    if (module_id < base + k) return module_id - base;
    base += k;
  }
  return -1;
}

ParamRange GridSpec::module_range(const ParamLayout& layout, int module_id) const {
  int l = module_level(module_id);
  const GridLevel& level = levels[static_cast<size_t>(l)];
  return layout.module_range(level.first_block, level.last_block, l == 0,
                             l + 1 == static_cast<int>(levels.size()));
}

int GridSpec::paths_using(int module_id) const {
  int l = module_level(module_id);
  if (l < 0) return 0;
  if (levels[static_cast<size_t>(l)].path_specific) return 1;
  return num_paths() / levels[static_cast<size_t>(l)].modules;
}

Status GridSpec::validate() const {
  if (name.empty()) return invalid_argument("run.name must not be empty");
  if (dir.empty()) return invalid_argument("run.dir must not be empty");
  if (outer_steps < 1) return invalid_argument("run.outer_steps must be >= 1");
  if (inner_steps < 1) return invalid_argument("run.inner_steps must be >= 1");
  if (workers < 1 || workers > 256) return invalid_argument("run.workers must be in [1, 256]");
  ModelConfig check = model;
  if (vocab_from_data) check.vocab_size = 2;
  if (Status s = check.validate(); !s) return invalid_argument("model." + s.message());
  if (Status s = inner.validate(check); !s) {
    std::string m = s.message();  // the trainer names its keys "train.<key>"
    for (size_t at = m.find("train."); at != std::string::npos; at = m.find("train.", at))
      m.replace(at, 6, "inner.");
    return invalid_argument(m);
  }
  if (Status s = dipaco::validate(outer); !s) return s;
  if (!(aggregation.drop_fraction >= 0 && aggregation.drop_fraction < 1))
    return invalid_argument("outer.drop_fraction must be in [0, 1)");
  if (levels.empty()) return invalid_argument("grid: at least one [[grid.level]] is needed");
  int next = 0;
  for (size_t i = 0; i < levels.size(); ++i) {
    const GridLevel& l = levels[i];
    std::string where = "grid.level[" + std::to_string(i) + "]";
    if (l.first_block != next) {
      return invalid_argument(where + ".blocks starts at block " + std::to_string(l.first_block) +
                              ", expected " + std::to_string(next) +
                              " (levels cover the blocks in order, without gaps or overlaps)");
    }
    if (l.last_block < l.first_block) {
      return invalid_argument(where + ".blocks [" + std::to_string(l.first_block) + ", " +
                              std::to_string(l.last_block) + "] is empty");
    }
    next = l.last_block + 1;
  }
  if (next != model.n_layers) {
    return invalid_argument("grid levels cover blocks 0.." + std::to_string(next - 1) +
                            " but the model has " + std::to_string(model.n_layers) +
                            " blocks (model.n_layers); the last level must end at block " +
                            std::to_string(model.n_layers - 1));
  }
  long long paths = 1;
  for (const GridLevel& l : levels)
    if (!l.path_specific) paths *= l.modules;
  if (paths > kMaxPaths)
    return invalid_argument("the grid has " + std::to_string(paths) + " paths; at most " +
                            std::to_string(kMaxPaths) + " are supported");
  for (size_t i = 0; i < levels.size(); ++i) {
    const GridLevel& l = levels[i];
    if (l.path_specific && l.modules != 0 && l.modules != paths) {
      return invalid_argument("grid.level[" + std::to_string(i) + "].modules is " +
                              std::to_string(l.modules) +
                              " but a path-specific level has one "
                              "module per path (" +
                              std::to_string(paths) + "); leave it out");
    }
  }
  if (shards_per_path < 1) return invalid_argument("grid.shards_per_path must be >= 1");
  int clusters = routing_clusters();
  switch (routing.method) {
    case RoutingMethod::kKMeans:
    case RoutingMethod::kRandom: break;
    case RoutingMethod::kProductKMeans: {
      std::vector<int> k;
      for (const GridLevel& l : levels)
        if (!l.path_specific) k.push_back(l.modules);
      if (k.size() != 2 || k[0] != k[1] || k[0] < 2) {
        return invalid_argument(
            "routing.method = \"product_kmeans\" needs exactly two shared levels with the same "
            "number K >= 2 of modules (K×K paths)");
      }
      break;
    }
    case RoutingMethod::kDiscriminative:
      if (routing.paths_from.empty()) {
        return invalid_argument(
            "routing.method = \"discriminative\" needs routing.paths_from: a finished run "
            "directory with the same number of paths, whose paths label the documents");
      }
      if (num_paths() < 2)
        return invalid_argument("routing.method = \"discriminative\" needs >= 2 paths");
      break;
  }
  if (routing.top2 && clusters < 2)
    return invalid_argument("routing.top2 needs at least two paths (or shards) to overlap");
  if (routing.prefix_tokens < 1 || routing.prefix_tokens > model.max_seq_len) {
    return invalid_argument("routing.prefix_tokens must be in [1, model.max_seq_len = " +
                            std::to_string(model.max_seq_len) + "]");
  }
  if (routing.reroute_every < 0) return invalid_argument("routing.reroute_every must be >= 0");
  if (routing.base_steps < 1) return invalid_argument("routing.base_steps must be >= 1");
  if (routing.label_tokens < 2) return invalid_argument("routing.label_tokens must be >= 2");
  if (train_tokens.empty()) return invalid_argument("data.train must name a token file");
  if (eval_every < 0) return invalid_argument("eval.every must be >= 0");
  if (eval_max_tokens < 0) return invalid_argument("eval.max_tokens must be >= 0");
  return Status::ok();
}

Result<GridSpec> parse_grid_spec(const std::string& text, const std::string& source) {
  DIPACO_ASSIGN_OR_RETURN(toml::table root, parse_toml(text, source));
  DIPACO_RETURN_IF_ERROR(check_toml_tables(
      root, {"run", "model", "inner", "outer", "compression", "grid", "routing", "data", "eval"},
      source));
  GridSpec g;
  g.levels.clear();
  int vocab = 0, kv_heads = 0;
  std::string outer_name = "nesterov", dtype_name = wire_dtype_name(g.dtype);
  std::string downlink_name = wire_dtype_name(g.downlink);
  std::string method_name = routing_method_name(g.routing.method);
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  // The outer optimizer's defaults depend on its kind: read the kind first.
  if (const toml::node* o = root.at_path("outer.optimizer").node()) {
    auto v = o->value_exact<std::string>();
    if (!v) return invalid_argument(source + ": outer.optimizer must be a string");
    outer_name = *v;
  }
  auto kind = parse_outer_optimizer(outer_name);
  if (!kind.is_ok())
    return invalid_argument(source + ": outer.optimizer: " + kind.status().message());
  g.outer = default_outer_config(*kind);
  int64_t outer_steps = static_cast<int64_t>(g.outer_steps), inner_steps = g.inner_steps;
  int64_t seed = static_cast<int64_t>(g.seed), data_seed = static_cast<int64_t>(g.data_seed);
  std::vector<std::pair<std::string, std::vector<TomlKey>>> tables = {
      {"run",
       {toml_string("name", &g.name), toml_string("dir", &g.dir),
        toml_int("outer_steps", &outer_steps, 1, 1 << 30),
        toml_int("inner_steps", &inner_steps, 1, 1 << 30), toml_int("workers", &g.workers, 1, 256),
        toml_int("threads", &g.threads, 0, 1024), toml_int("seed", &seed, 0, kMax),
        toml_bool("warm_start", &g.warm_start)}},
      {"model", model_toml_keys(&g.model, &vocab, &kv_heads)},
      {"inner", optimizer_toml_keys(&g.inner)},
      {"outer",
       {toml_string("optimizer", &outer_name), toml_float("lr", &g.outer.lr),
        toml_float("momentum", &g.outer.momentum), toml_float("beta1", &g.outer.beta1),
        toml_float("beta2", &g.outer.beta2), toml_float("eps", &g.outer.eps),
        toml_bool("rescale_by_sqrt_paths", &g.aggregation.rescale_by_sqrt_paths),
        toml_double("drop_fraction", &g.aggregation.drop_fraction)}},
      {"compression",
       {toml_string("dtype", &dtype_name), toml_bool("error_feedback", &g.error_feedback),
        toml_string("downlink", &downlink_name)}},
      {"routing",
       {toml_string("method", &method_name), toml_bool("balanced", &g.routing.balanced),
        toml_bool("top2", &g.routing.top2),
        toml_int("prefix_tokens", &g.routing.prefix_tokens, 1, 1 << 20),
        toml_int("reroute_every", &g.routing.reroute_every, 0, 1 << 30),
        toml_string("base_checkpoint", &g.routing.base_checkpoint),
        toml_int("base_steps", &g.routing.base_steps, 1, kMax),
        toml_string("paths_from", &g.routing.paths_from),
        toml_int("label_tokens", &g.routing.label_tokens, 2, 1 << 20)}},
      {"data",
       {toml_string("train", &g.train_tokens), toml_string("val", &g.val_tokens),
        toml_string("tokenizer", &g.tokenizer), toml_int("seed", &data_seed, 0, kMax)}},
      {"eval",
       {toml_int("every", &g.eval_every, 0, 1 << 30),
        toml_int("max_tokens", &g.eval_max_tokens, 0, std::numeric_limits<int>::max()),
        toml_bool("keep_best", &g.keep_best)}},
  };
  for (const auto& [name, keys] : tables) {
    if (Status s = read_toml_table(root, name, keys); !s) return s.with_context(source);
  }
  if (Status s = read_levels(root, &g); !s) return s.with_context(source);
  if (g.levels.empty()) g.levels.push_back({0, g.model.n_layers - 1, 1, false});
  g.outer_steps = static_cast<uint64_t>(outer_steps);
  g.inner_steps = static_cast<uint32_t>(inner_steps);
  g.seed = static_cast<uint64_t>(seed);
  g.data_seed = static_cast<uint64_t>(data_seed);
  g.aggregation.drop_seed = g.seed;
  g.vocab_from_data = vocab == 0;
  if (vocab != 0) g.model.vocab_size = vocab;
  g.model.n_kv_heads = kv_heads == 0 ? g.model.n_heads : kv_heads;
  g.inner.seed = g.seed;
  g.inner.steps = static_cast<int64_t>(g.outer_steps) * g.inner_steps;
  auto dtype = parse_wire_dtype(dtype_name);
  if (!dtype.is_ok())
    return invalid_argument(source + ": compression.dtype: " + dtype.status().message());
  g.dtype = *dtype;
  auto downlink = parse_wire_dtype(downlink_name);
  if (!downlink.is_ok())
    return invalid_argument(source + ": compression.downlink: " + downlink.status().message());
  g.downlink = *downlink;
  auto method = parse_routing_method(method_name);
  if (!method.is_ok()) return method.status().with_context(source);
  g.routing.method = *method;
  int paths = g.num_paths();
  for (GridLevel& l : g.levels)
    if (l.path_specific && l.modules == 0) l.modules = paths;
  if (Status s = g.validate(); !s) return s.with_context(source);
  return g;
}

Result<GridSpec> load_grid_spec(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_grid_spec(text, path);
}

std::string GridSpec::to_toml() const {
  auto f = toml_float_literal;
  auto q = toml_string_literal;
  auto b = [](bool v) { return v ? "true" : "false"; };
  std::ostringstream o;
  o << "# Effective grid of this run (defaults filled in).\n[run]\nname = " << q(name)
    << "\ndir = " << q(dir) << "\nouter_steps = " << outer_steps
    << "\ninner_steps = " << inner_steps << "\nworkers = " << workers << "\nthreads = " << threads
    << "\nseed = " << seed << "\nwarm_start = " << b(warm_start)
    << "\n\n[model]\nvocab_size = " << (vocab_from_data ? 0 : model.vocab_size)
    << "\nd_model = " << model.d_model << "\nn_layers = " << model.n_layers
    << "\nn_heads = " << model.n_heads << "\nn_kv_heads = " << model.n_kv_heads
    << "\nd_ff = " << model.d_ff << "\nmax_seq_len = " << model.max_seq_len
    << "\nrope_theta = " << f(model.rope_theta) << "\nnorm_eps = " << f(model.norm_eps)
    << "\n\n[inner]\nbatch_size = " << inner.batch_size << "\nseq_len = " << inner.seq_len
    << "\ngrad_accum = " << inner.grad_accum << "\nwarmup_steps = " << inner.warmup_steps
    << "\nlr = " << f(inner.lr) << "\nmin_lr = " << f(inner.min_lr)
    << "\nweight_decay = " << f(inner.adamw.weight_decay) << "\nbeta1 = " << f(inner.adamw.beta1)
    << "\nbeta2 = " << f(inner.adamw.beta2) << "\neps = " << f(inner.adamw.eps)
    << "\ngrad_clip = " << f(inner.grad_clip)
    << "\n\n[outer]\noptimizer = " << q(outer_optimizer_name(outer.kind))
    << "\nlr = " << f(outer.lr) << "\nmomentum = " << f(outer.momentum)
    << "\nbeta1 = " << f(outer.beta1) << "\nbeta2 = " << f(outer.beta2)
    << "\neps = " << f(outer.eps)
    << "\nrescale_by_sqrt_paths = " << b(aggregation.rescale_by_sqrt_paths)
    << "\ndrop_fraction = " << f(aggregation.drop_fraction)
    << "\n\n[compression]\ndtype = " << q(wire_dtype_name(dtype))
    << "\nerror_feedback = " << b(error_feedback) << "\ndownlink = " << q(wire_dtype_name(downlink))
    << "\n\n[grid]\nshards_per_path = " << shards_per_path << "\n";
  for (const GridLevel& l : levels) {
    o << "\n[[grid.level]]\nblocks = [" << l.first_block << ", " << l.last_block << "]\n";
    if (l.path_specific) {
      o << "path_specific = true\n";
    } else {
      o << "modules = " << l.modules << "\n";
    }
  }
  o << "\n[routing]\nmethod = " << q(routing_method_name(routing.method))
    << "\nbalanced = " << b(routing.balanced) << "\ntop2 = " << b(routing.top2)
    << "\nprefix_tokens = " << routing.prefix_tokens
    << "\nreroute_every = " << routing.reroute_every
    << "\nbase_checkpoint = " << q(routing.base_checkpoint)
    << "\nbase_steps = " << routing.base_steps << "\npaths_from = " << q(routing.paths_from)
    << "\nlabel_tokens = " << routing.label_tokens << "\n\n[data]\ntrain = " << q(train_tokens)
    << "\nval = " << q(val_tokens) << "\ntokenizer = " << q(tokenizer) << "\nseed = " << data_seed
    << "\n\n[eval]\nevery = " << eval_every << "\nmax_tokens = " << eval_max_tokens
    << "\nkeep_best = " << b(keep_best) << "\n";
  return o.str();
}

}  // namespace dipaco
