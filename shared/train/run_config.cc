#include "train/run_config.h"

#include <toml++/toml.h>

#include <charconv>
#include <functional>
#include <limits>
#include <sstream>
#include <vector>

#include "util/arg_parser.h"
#include "util/atomic_file.h"

namespace dipaco {

namespace {

// One settable key of a table.
struct Key {
  const char* name;
  std::function<Status(const toml::node&, const std::string& where)> set;
};

Key int_key(const char* name, int64_t* out, int64_t min, int64_t max) {
  return {name, [=](const toml::node& n, const std::string& where) -> Status {
            auto v = n.value_exact<int64_t>();
            if (!v) return invalid_argument(where + " must be an integer");
            if (*v < min || *v > max) {
              return invalid_argument(where + " must be in [" + std::to_string(min) + ", " +
                                      std::to_string(max) + "], got " + std::to_string(*v));
            }
            *out = *v;
            return Status::ok();
          }};
}

Key int_key(const char* name, int* out, int min, int max) {
  return {name, [=](const toml::node& n, const std::string& where) -> Status {
            int64_t v = 0;
            DIPACO_RETURN_IF_ERROR(int_key(name, &v, min, max).set(n, where));
            *out = static_cast<int>(v);
            return Status::ok();
          }};
}

Key double_key(const char* name, double* out) {
  return {name, [=](const toml::node& n, const std::string& where) -> Status {
            auto v = n.value<double>();  // integers are accepted too
            if (!v || n.is_boolean() || n.is_string())
              return invalid_argument(where + " must be a number");
            *out = *v;
            return Status::ok();
          }};
}

Key string_key(const char* name, std::string* out) {
  return {name, [=](const toml::node& n, const std::string& where) -> Status {
            auto v = n.value_exact<std::string>();
            if (!v) return invalid_argument(where + " must be a string");
            *out = *v;
            return Status::ok();
          }};
}

Status read_table(const toml::table& root, const std::string& table, const std::vector<Key>& keys) {
  const toml::node* node = root.get(table);
  if (node == nullptr) return Status::ok();
  const toml::table* t = node->as_table();
  if (t == nullptr) return invalid_argument("'" + table + "' must be a table ([" + table + "])");
  for (const auto& [k, v] : *t) {
    std::string name(k.str());
    std::string where = table + "." + name;
    const Key* key = nullptr;
    for (const Key& candidate : keys)
      if (name == candidate.name) key = &candidate;
    if (key == nullptr) {
      std::string best;
      size_t best_distance = 4;
      for (const Key& candidate : keys) {
        size_t d = edit_distance(name, candidate.name);
        if (d < best_distance) {
          best_distance = d;
          best = candidate.name;
        }
      }
      return invalid_argument(
          "unknown key '" + where + "'" +
          (best.empty() ? "" : " (did you mean '" + table + "." + best + "'?)"));
    }
    DIPACO_RETURN_IF_ERROR(key->set(v, where));
  }
  return Status::ok();
}

}  // namespace

Result<RunConfig> parse_run_config(const std::string& text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return invalid_argument(source + ":" + std::to_string(where.line) + ":" +
                            std::to_string(where.column) + ": " + std::string(e.description()));
  }
  static const char* kTables[] = {"model", "train", "data", "eval", "checkpoint", "log"};
  for (const auto& [k, v] : root) {
    bool known = false;
    for (const char* t : kTables) known = known || k.str() == t;
    if (!known) {
      return invalid_argument(source + ": unknown table '" + std::string(k.str()) +
                              "' (tables: model, train, data, eval, checkpoint, log)");
    }
  }
  RunConfig c;
  ModelConfig& m = c.model;
  TrainOptions& t = c.train;
  const int kMaxInt = std::numeric_limits<int>::max();
  int vocab = 0;
  int kv_heads = 0;  // 0: as many as n_heads (plain multi-head attention)
  int64_t seed = static_cast<int64_t>(t.seed), data_seed = static_cast<int64_t>(c.data_seed);
  std::vector<std::pair<std::string, std::vector<Key>>> tables = {
      {"model",
       {int_key("vocab_size", &vocab, 0, kMaxInt), int_key("d_model", &m.d_model, 1, kMaxInt),
        int_key("n_layers", &m.n_layers, 1, 4096), int_key("n_heads", &m.n_heads, 1, kMaxInt),
        int_key("n_kv_heads", &kv_heads, 0, kMaxInt), int_key("d_ff", &m.d_ff, 1, kMaxInt),
        int_key("max_seq_len", &m.max_seq_len, 1, 1 << 20), double_key("rope_theta", &m.rope_theta),
        double_key("norm_eps", &m.norm_eps)}},
      {"train",
       {int_key("batch_size", &t.batch_size, 1, 1 << 20),
        int_key("seq_len", &t.seq_len, 1, 1 << 20),
        int_key("grad_accum", &t.grad_accum, 1, 1 << 20),
        int_key("steps", &t.steps, 1, std::numeric_limits<int64_t>::max()),
        int_key("warmup_steps", &t.warmup_steps, 0, std::numeric_limits<int64_t>::max()),
        double_key("lr", &t.lr), double_key("min_lr", &t.min_lr),
        double_key("weight_decay", &t.adamw.weight_decay), double_key("beta1", &t.adamw.beta1),
        double_key("beta2", &t.adamw.beta2), double_key("eps", &t.adamw.eps),
        double_key("grad_clip", &t.grad_clip),
        int_key("seed", &seed, 0, std::numeric_limits<int64_t>::max()),
        int_key("threads", &c.threads, 0, 1024)}},
      {"data",
       {string_key("train", &c.train_tokens), string_key("val", &c.val_tokens),
        int_key("seed", &data_seed, 0, std::numeric_limits<int64_t>::max())}},
      {"eval",
       {int_key("every", &c.eval_every, 0, std::numeric_limits<int64_t>::max()),
        int_key("batches", &c.eval_batches, 1, 1 << 20)}},
      {"checkpoint",
       {string_key("dir", &c.checkpoint_dir),
        int_key("every", &c.checkpoint_every, 0, std::numeric_limits<int64_t>::max())}},
      {"log", {int_key("every", &c.log_every, 1, std::numeric_limits<int64_t>::max())}},
  };
  for (const auto& [name, keys] : tables) {
    if (Status s = read_table(root, name, keys); !s) return s.with_context(source);
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
  return c;
}

Result<RunConfig> load_run_config(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_run_config(text, path);
}

std::string RunConfig::to_toml() const {
  std::ostringstream o;
  // Shortest text that reads back as the same double, always with a '.' or exponent (TOML float).
  auto f = [](double v) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    std::string s(buf, end);
    if (s.find_first_of(".en") == std::string::npos) s += ".0";
    return s;
  };
  auto q = [](const std::string& s) {
    std::string out = "\"";
    for (char ch : s) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    return out + "\"";
  };
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
    << "\nthreads = " << threads << "\n\n[data]\ntrain = " << q(train_tokens)
    << "\nval = " << q(val_tokens) << "\nseed = " << data_seed
    << "\n\n[eval]\nevery = " << eval_every << "\nbatches = " << eval_batches
    << "\n\n[checkpoint]\ndir = " << q(checkpoint_dir) << "\nevery = " << checkpoint_every
    << "\n\n[log]\nevery = " << log_every << "\n";
  return o.str();
}

}  // namespace dipaco
