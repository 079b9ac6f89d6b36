// dipaco: the command-line front end. Dispatches to one subcommand per design verb.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend_factory.h"
#include "backend/cpu/blas_runtime.h"
#include "cli/commands.h"
#include "util/arg_parser.h"

namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(const dipaco::cli::Args&);
};

constexpr Subcommand kSubcommands[] = {
    {"run", "train a DiPaCo/DiLoCo grid: embedded coordinator + local workers",
     dipaco::cli::cmd_run},
    {"serve", "run a headless coordinator that remote workers connect to", dipaco::cli::cmd_serve},
    {"work", "run a worker in the foreground against a coordinator", dipaco::cli::cmd_work},
    {"ctl", "operator actions on a dipaco serve: workers, drain, pause, watch, ...",
     dipaco::cli::cmd_ctl},
    {"train", "train one dense model (the baseline paths are compared against)",
     dipaco::cli::cmd_train},
    {"export", "export trained paths (HF Llama safetensors, GGUF) and the router",
     dipaco::cli::cmd_export},
    {"generate", "route a prompt to a path and sample from it", dipaco::cli::cmd_generate},
    {"eval", "per-path and routed perplexity of an export on a token or text file",
     dipaco::cli::cmd_eval},
    {"doctor", "check this host: CPU features, BLAS, CUDA devices and libraries",
     dipaco::cli::cmd_doctor},
    {"data", "fetch corpora, train tokenizers, write token files", dipaco::cli::cmd_data},
};

void print_help(FILE* out) {
  std::fprintf(out,
               "usage: dipaco <command> [options]\n\n"
               "Train language models as DiPaCo paths and DiLoCo replicas.\n\ncommands:\n");
  for (const auto& sub : kSubcommands) std::fprintf(out, "  %-9s %s\n", sub.name, sub.summary);
  std::fprintf(out,
               "\n'dipaco <command> --help' describes a command.\n"
               "  --version  print the version\n  --help     show this help\n");
}

}  // namespace

int main(int argc, char** argv) {
  dipaco::ensure_fast_blas_kernels(argv);
  // Reports reach a redirected stdout (a journal, a log file) line by line, as they are printed.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  dipaco::prepare_gpu_environment();
  if (argc < 2) {
    print_help(stderr);
    return dipaco::cli::kExitUsage;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_help(stdout);
    return dipaco::cli::kExitOk;
  }
  if (name == "--version") {
    std::printf("dipaco %s\n", DIPACO_VERSION);
    return dipaco::cli::kExitOk;
  }
  dipaco::cli::Args args(argv + 2, argv + argc);
  for (const auto& sub : kSubcommands) {
    if (name == sub.name) return sub.run(args);
  }
  std::string suggestion;
  size_t best = 3;
  for (const auto& sub : kSubcommands) {
    size_t d = dipaco::edit_distance(name, sub.name);
    if (d < best) {
      best = d;
      suggestion = sub.name;
    }
  }
  std::fprintf(stderr, "dipaco: unknown command '%s'%s\nRun 'dipaco --help' for the list.\n",
               name.c_str(),
               suggestion.empty() ? "" : (" (did you mean '" + suggestion + "'?)").c_str());
  return dipaco::cli::kExitUsage;
}
