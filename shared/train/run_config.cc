#include "train/run_config.h"

#include <limits>
#include <sstream>
#include <vector>

#include "backend/backend_factory.h"
#include "util/atomic_file.h"
#include "util/toml_table.h"

namespace dipaco {

std::vector<TomlKey> model_toml_keys(ModelConfig* m, int* vocab, int* kv_heads) {
  const int kMaxInt = std::numeric_limits<int>::max();
  return {toml_int("vocab_size", vocab, 0, kMaxInt),
          toml_int("d_model", &m->d_model, 1, kMaxInt),
          toml_int("n_layers", &m->n_layers, 1, 4096),
          toml_int("n_heads", &m->n_heads, 1, kMaxInt),
          toml_int("n_kv_heads", kv_heads, 0, kMaxInt),
          toml_int("d_ff", &m->d_ff, 1, kMaxInt),
          toml_int("max_seq_len", &m->max_seq_len, 1, 1 << 20),
          toml_double("rope_theta", &m->rope_theta),
          toml_double("norm_eps", &m->norm_eps)};
}

std::vector<TomlKey> optimizer_toml_keys(TrainOptions* t) {
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  return {toml_int("batch_size", &t->batch_size, 1, 1 << 20),
          toml_int("seq_len", &t->seq_len, 1, 1 << 20),
          toml_int("grad_accum", &t->grad_accum, 1, 1 << 20),
          toml_int("warmup_steps", &t->warmup_steps, 0, kMax),
          toml_double("lr", &t->lr),
          toml_double("min_lr", &t->min_lr),
          toml_double("weight_decay", &t->adamw.weight_decay),
          toml_double("beta1", &t->adamw.beta1),
          toml_double("beta2", &t->adamw.beta2),
          toml_double("eps", &t->adamw.eps),
          toml_double("grad_clip", &t->grad_clip)};
}

Result<RunConfig> parse_run_config(const std::string& text, const std::string& source) {
  DIPACO_ASSIGN_OR_RETURN(toml::table root, parse_toml(text, source));
  DIPACO_RETURN_IF_ERROR(
      check_toml_tables(root, {"model", "train", "data", "eval", "checkpoint", "log"}, source));
  RunConfig c;
  ModelConfig& m = c.model;
  TrainOptions& t = c.train;
  int vocab = 0;
  int kv_heads = 0;  // 0: as many as n_heads (plain multi-head attention)
  int64_t seed = static_cast<int64_t>(t.seed), data_seed = static_cast<int64_t>(c.data_seed);
  std::vector<TomlKey> train_keys = optimizer_toml_keys(&t);
  train_keys.push_back(toml_int("steps", &t.steps, 1, std::numeric_limits<int64_t>::max()));
  train_keys.push_back(toml_int("seed", &seed, 0, std::numeric_limits<int64_t>::max()));
  train_keys.push_back(toml_int("threads", &c.threads, 0, 1024));
  train_keys.push_back(toml_string("backend", &c.backend));
  train_keys.push_back(toml_string("precision", &c.precision));
  std::vector<std::pair<std::string, std::vector<TomlKey>>> tables = {
      {"model", model_toml_keys(&m, &vocab, &kv_heads)},
      {"train", train_keys},
      {"data",
       {toml_string("train", &c.train_tokens), toml_string("val", &c.val_tokens),
        toml_int("seed", &data_seed, 0, std::numeric_limits<int64_t>::max())}},
      {"eval",
       {toml_int("every", &c.eval_every, 0, std::numeric_limits<int64_t>::max()),
        toml_int("batches", &c.eval_batches, 1, 1 << 20)}},
      {"checkpoint",
       {toml_string("dir", &c.checkpoint_dir),
        toml_int("every", &c.checkpoint_every, 0, std::numeric_limits<int64_t>::max())}},
      {"log", {toml_int("every", &c.log_every, 1, std::numeric_limits<int64_t>::max())}},
  };
  for (const auto& [name, keys] : tables) {
    if (Status s = read_toml_table(root, name, keys); !s) return s.with_context(source);
  }
  t.seed = static_cast<uint64_t>(seed);
  c.data_seed = static_cast<uint64_t>(data_seed);
  c.vocab_from_data = vocab == 0;
  if (vocab != 0) m.vocab_size = vocab;
  m.n_kv_heads = kv_heads == 0 ? m.n_heads : kv_heads;
  if (c.train_tokens.empty())
    return invalid_argument(source + ": data.train must name a token file");
  if (c.checkpoint_dir.empty())
    return invalid_argument(source + ": checkpoint.dir must not be empty");
  // The vocabulary may still come from the data: validate with a placeholder until then.
  ModelConfig check = m;
  if (c.vocab_from_data) check.vocab_size = 2;
  if (Status s = check.validate(); !s) return invalid_argument(source + ": model." + s.message());
  if (Status s = t.validate(check); !s) return s.with_context(source);
  BackendChoice choice;
  if (Status s = parse_backend_name(c.backend, &choice); !s) {
    return invalid_argument(source + ": train.backend: " + s.message());
  }
  if (auto p = parse_cuda_precision(c.precision); !p.is_ok()) {
    return invalid_argument(source + ": train.precision: " + p.status().message());
  }
  return c;
}

Result<RunConfig> load_run_config(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_run_config(text, path);
}

std::string RunConfig::to_toml() const {
  std::ostringstream o;
  // Shortest text that reads back as the same double, always with a '.' or exponent (TOML float).
  auto f = toml_float_literal;
  auto q = toml_string_literal;
  o << "# Effective configuration of this run (defaults filled in).\n"
    << "[model]\nvocab_size = " << model.vocab_size << "\nd_model = " << model.d_model
    << "\nn_layers = " << model.n_layers << "\nn_heads = " << model.n_heads
    << "\nn_kv_heads = " << model.n_kv_heads << "\nd_ff = " << model.d_ff
    << "\nmax_seq_len = " << model.max_seq_len << "\nrope_theta = " << f(model.rope_theta)
    << "\nnorm_eps = " << f(model.norm_eps) << "\n\n[train]\nbatch_size = " << train.batch_size
    << "\nseq_len = " << train.seq_len << "\ngrad_accum = " << train.grad_accum
    << "\nsteps = " << train.steps << "\nwarmup_steps = " << train.warmup_steps
    << "\nlr = " << f(train.lr) << "\nmin_lr = " << f(train.min_lr)
    << "\nweight_decay = " << f(train.adamw.weight_decay) << "\nbeta1 = " << f(train.adamw.beta1)
    << "\nbeta2 = " << f(train.adamw.beta2) << "\neps = " << f(train.adamw.eps)
    << "\ngrad_clip = " << f(train.grad_clip) << "\nseed = " << train.seed
    << "\nthreads = " << threads << "\nbackend = " << q(backend) << "\nprecision = " << q(precision)
    << "\n\n[data]\ntrain = " << q(train_tokens) << "\nval = " << q(val_tokens)
    << "\nseed = " << data_seed << "\n\n[eval]\nevery = " << eval_every
    << "\nbatches = " << eval_batches << "\n\n[checkpoint]\ndir = " << q(checkpoint_dir)
    << "\nevery = " << checkpoint_every << "\n\n[log]\nevery = " << log_every << "\n";
  return o.str();
}

}  // namespace dipaco
