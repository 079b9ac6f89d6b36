#include "train/train_loop.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "backend/backend_factory.h"
#include "export/hf_llama.h"
#include "train/token_batch_source.h"
#include "util/atomic_file.h"

namespace dipaco {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string format_duration(double seconds) {
  auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

// Mean validation loss over the same first `batches` batches every time.
double validate(Trainer& trainer, BatchSource& val, const std::string& start, int batches) {
  (void)val.restore(start);
  return trainer.evaluate(val, batches);
}

}  // namespace

Result<TrainLoopResult> run_training(const RunConfig& input, const TrainLoopOptions& options) {
  RunConfig config = input;
  FILE* out = options.out;
  const TrainOptions& t = config.train;

  auto train_src =
      TokenBatchSource::open(config.train_tokens, t.batch_size, t.seq_len, config.data_seed);
  if (!train_src.is_ok()) {
    Status s = train_src.status().with_context("data.train");
    if (s.code() == StatusCode::kNotFound || s.message().find("No such file") != std::string::npos)
      return Status(s.code(), s.message() + " (write token files with 'dipaco data tokenize')");
    return s;
  }
  const uint32_t data_vocab = (*train_src)->file().vocab_size();
  if (config.vocab_from_data) {
    config.model.vocab_size = static_cast<int>(data_vocab);
  } else if (static_cast<uint32_t>(config.model.vocab_size) < data_vocab) {
    return invalid_argument("model.vocab_size " + std::to_string(config.model.vocab_size) +
                            " is smaller than the vocabulary of " + config.train_tokens + " (" +
                            std::to_string(data_vocab) + ")");
  }
  std::unique_ptr<TokenBatchSource> val_src;
  if (!config.val_tokens.empty()) {
    auto v = TokenBatchSource::open(config.val_tokens, t.batch_size, t.seq_len, config.data_seed);
    if (!v.is_ok()) return v.status().with_context("data.val");
    if ((*v)->file().vocab_size() > static_cast<uint32_t>(config.model.vocab_size)) {
      return invalid_argument("data.val " + config.val_tokens + " has vocabulary " +
                              std::to_string((*v)->file().vocab_size()) + ", the model " +
                              std::to_string(config.model.vocab_size));
    }
    val_src = std::move(v).value();
  }
  const std::string val_start = val_src ? val_src->position() : "";

  BackendChoice choice;
  DIPACO_RETURN_IF_ERROR(parse_backend_name(config.backend, &choice));
  DIPACO_ASSIGN_OR_RETURN(choice.precision, parse_cuda_precision(config.precision));
  choice.cpu_threads = config.threads;
  DIPACO_ASSIGN_OR_RETURN(CreatedBackend created, create_backend(choice));
  if (!created.note.empty()) std::fprintf(out, "%s\n", created.note.c_str());
  Backend& backend = *created.backend;
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                          Trainer::create(&backend, config.model, t));

  std::error_code ec;
  std::filesystem::create_directories(config.checkpoint_dir, ec);
  if (ec) {
    return io_error("checkpoint.dir " + config.checkpoint_dir + ": cannot create: " + ec.message());
  }
  const std::string ckpt = config.checkpoint_dir + "/checkpoint.safetensors";
  if (!options.fresh && std::filesystem::exists(ckpt)) {
    DIPACO_RETURN_IF_ERROR(trainer->load_checkpoint(ckpt, train_src->get()));
    std::fprintf(out, "resuming from %s at step %lld\n", ckpt.c_str(),
                 static_cast<long long>(trainer->step()));
  } else if (!options.init_from.empty()) {
    auto hf = load_hf_export(options.init_from);
    if (!hf.is_ok()) return hf.status().with_context("--init-from");
    if (!(hf->config == config.model)) {
      return invalid_argument("--init-from " + options.init_from +
                              ": its model differs from this run's (export vs run: " +
                              hf->config.difference(config.model) + ")");
    }
    trainer->model().set_params(hf->params);
    std::fprintf(out, "warm start from %s\n", options.init_from.c_str());
  }
  DIPACO_RETURN_IF_ERROR(
      write_file_atomically(config.checkpoint_dir + "/config.toml", config.to_toml()));

  const Model& model = trainer->model();
  std::fprintf(out,
               "model: %zu parameters (vocab %d, d_model %d, %d layers, %d heads / %d kv, d_ff "
               "%d)\nbackend: %s\ntraining: %lld steps of %d x %d tokens x %d accumulation, lr "
               "%g, warmup %lld\n",
               model.num_params(), config.model.vocab_size, config.model.d_model,
               config.model.n_layers, config.model.n_heads, config.model.n_kv_heads,
               config.model.d_ff, backend.name().c_str(), static_cast<long long>(t.steps),
               t.batch_size, t.seq_len, t.grad_accum, t.lr, static_cast<long long>(t.warmup_steps));
  std::fflush(out);

  FILE* metrics = std::fopen((config.checkpoint_dir + "/metrics.jsonl").c_str(), "a");
  TrainLoopResult result;
  result.checkpoint_path = ckpt;
  result.val_loss = NAN;
  auto start = std::chrono::steady_clock::now();
  auto window_start = start;
  int64_t window_tokens = 0, total_tokens = 0, window_steps = 0;
  double window_loss = 0;
  int64_t last_saved = trainer->step();
  const int64_t first_step = trainer->step();

  auto save = [&]() -> Status {
    DIPACO_RETURN_IF_ERROR(trainer->save_checkpoint(ckpt, **train_src));
    last_saved = trainer->step();
    return Status::ok();
  };
  auto run_eval = [&]() {
    if (!val_src) return;
    result.val_loss = validate(*trainer, *val_src, val_start, config.eval_batches);
    std::fprintf(out, "step %lld | val loss %.4f | val ppl %.2f\n",
                 static_cast<long long>(trainer->step()), result.val_loss,
                 std::exp(result.val_loss));
    if (metrics != nullptr) {
      std::fprintf(metrics, "{\"step\": %lld, \"val_loss\": %.6f}\n",
                   static_cast<long long>(trainer->step()), result.val_loss);
      std::fflush(metrics);
    }
  };

  while (trainer->step() < t.steps) {
    auto stats = trainer->train_step(**train_src);
    if (!stats.is_ok()) {
      if (metrics != nullptr) std::fclose(metrics);
      std::string kept = last_saved > 0 || std::filesystem::exists(ckpt)
                             ? "; the last good checkpoint is " + ckpt + " (step " +
                                   std::to_string(last_saved) + ")"
                             : "; no checkpoint was written";
      return Status(stats.status().code(), stats.status().message() + kept);
    }
    window_loss += stats->loss;
    window_tokens += stats->tokens;
    total_tokens += stats->tokens;
    ++window_steps;
    const int64_t step = stats->step;
    if (step % config.log_every == 0 || step == t.steps) {
      double dt = seconds_since(window_start);
      double tps = dt > 0 ? window_tokens / dt : 0;
      double elapsed = seconds_since(start);
      double eta =
          elapsed / static_cast<double>(step - first_step) * static_cast<double>(t.steps - step);
      result.train_loss = window_loss / window_steps;
      std::fprintf(out,
                   "step %lld/%lld | loss %.4f | ppl %.2f | lr %.2e | grad norm %.3f | %.0f "
                   "tok/s | ETA %s\n",
                   static_cast<long long>(step), static_cast<long long>(t.steps), result.train_loss,
                   std::exp(result.train_loss), stats->lr, stats->grad_norm, tps,
                   format_duration(eta).c_str());
      std::fflush(out);
      if (metrics != nullptr) {
        std::fprintf(metrics,
                     "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6e, \"grad_norm\": %.6f, "
                     "\"tokens_per_s\": %.1f}\n",
                     static_cast<long long>(step), result.train_loss, stats->lr, stats->grad_norm,
                     tps);
        std::fflush(metrics);
      }
      window_loss = 0;
      window_tokens = 0;
      window_steps = 0;
      window_start = std::chrono::steady_clock::now();
    }
    if (options.stop != nullptr && options.stop->load() && step != t.steps) {
      Status saved = save();
      if (metrics != nullptr) std::fclose(metrics);
      DIPACO_RETURN_IF_ERROR(saved);
      std::fprintf(out, "interrupted at step %lld; checkpoint %s saved, run again to resume\n",
                   static_cast<long long>(step), ckpt.c_str());
      result.step = step;
      result.interrupted = true;
      return result;
    }
    if (config.eval_every > 0 && step % config.eval_every == 0 && step != t.steps) run_eval();
    if (config.checkpoint_every > 0 && step % config.checkpoint_every == 0 && step != t.steps) {
      if (Status s = save(); !s) {
        if (metrics != nullptr) std::fclose(metrics);
        return s;
      }
    }
  }
  double elapsed = seconds_since(start);
  result.tokens_per_second = elapsed > 0 ? total_tokens / elapsed : 0;
  run_eval();
  Status saved = save();
  if (metrics != nullptr) std::fclose(metrics);
  DIPACO_RETURN_IF_ERROR(saved);
  result.step = trainer->step();
  if (total_tokens == 0) {
    std::fprintf(out, "already trained to step %lld (train.steps %lld)",
                 static_cast<long long>(result.step), static_cast<long long>(t.steps));
  } else {
    std::fprintf(out, "done: step %lld, train loss %.4f (ppl %.2f)",
                 static_cast<long long>(result.step), result.train_loss,
                 std::exp(result.train_loss));
  }
  if (val_src)
    std::fprintf(out, ", val loss %.4f (ppl %.2f)", result.val_loss, std::exp(result.val_loss));
  if (total_tokens > 0) std::fprintf(out, ", %.0f tok/s", result.tokens_per_second);
  std::fprintf(out, "; checkpoint %s\n", ckpt.c_str());
  return result;
}

}  // namespace dipaco
