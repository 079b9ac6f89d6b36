// dipaco train CONFIG.toml: train one dense model on token files (the baseline DiPaCo paths are
// compared against). See shared/train/train_loop.h for what a run does.
#include <atomic>
#include <csignal>
#include <cstdio>

#include "backend/backend_factory.h"
#include "cli/commands.h"
#include "cli/stop_signal.h"
#include "train/train_loop.h"
#include "util/arg_parser.h"

namespace dipaco::cli {

int cmd_train(const Args& args) {
  ArgParser parser("dipaco train",
                   "Train one dense Llama-style model on token files written by 'dipaco data "
                   "tokenize'. Resumes from CHECKPOINT_DIR/checkpoint.safetensors when present.");
  std::string config_path;
  bool fresh = false;
  int64_t steps = 0;
  std::string checkpoint_dir;
  parser.add_positional("CONFIG", "run configuration (TOML; see resources/models/*.toml)",
                        &config_path);
  parser.add_flag("--fresh", "start from step 0 even if the checkpoint directory has a checkpoint",
                  &fresh);
  parser.add_option("--steps", "N", "override train.steps", &steps, 1, int64_t{1} << 40);
  parser.add_option("--checkpoint-dir", "DIR", "override checkpoint.dir", &checkpoint_dir);
  std::string backend;
  parser.add_option("--backend", "NAME", "override train.backend: auto, cpu, cuda or cuda:N",
                    &backend);
  std::string init_from;
  parser.add_option("--init-from", "HF_DIR",
                    "start from these weights (a path directory of 'dipaco export') instead of "
                    "a random init; ignored when resuming",
                    &init_from);
  if (Status s = parser.parse(args); !s) {
    std::fprintf(stderr, "dipaco train: %s\n\n%s", s.message().c_str(), parser.usage().c_str());
    return kExitUsage;
  }
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return kExitOk;
  }
  auto config = load_run_config(config_path);
  if (!config.is_ok()) {
    std::fprintf(stderr, "dipaco train: %s\n", config.status().message().c_str());
    return config.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  if (steps > 0) config->train.steps = steps;
  if (!checkpoint_dir.empty()) config->checkpoint_dir = checkpoint_dir;
  if (!backend.empty()) {
    BackendChoice choice;
    if (Status s = parse_backend_name(backend, &choice); !s) {
      std::fprintf(stderr, "dipaco train: --backend: %s\n", s.message().c_str());
      return kExitUsage;
    }
    config->backend = backend;
  }
  TrainLoopOptions options;
  options.fresh = fresh;
  options.init_from = init_from;
  // Ctrl-C / SIGTERM: finish the step, save a checkpoint, exit; a second Ctrl-C kills.
  options.stop = install_stop_signals();
  auto result = run_training(*config, options);
  if (!result.is_ok()) {
    std::fprintf(stderr, "dipaco train: %s\n", result.status().message().c_str());
    return kExitFailure;
  }
  return result->interrupted ? 128 + SIGINT : kExitOk;
}

}  // namespace dipaco::cli
