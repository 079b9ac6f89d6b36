// dipaco-worker: the worker as an OS service. This build knows its version and can check the
// host; leasing and training arrive with the distribution layer.
#include <cstdio>
#include <string>
#include <vector>

#include "backend/cpu/blas_runtime.h"
#include "backend/cpu/cpu_features.h"
#include "backend/cuda_runtime.h"
#include "util/arg_parser.h"

int main(int argc, char** argv) {
  dipaco::ensure_fast_blas_kernels(argv);
  bool check = false;
  bool version = false;
  std::string config = "/etc/dipaco/worker.toml";
  dipaco::ArgParser parser("dipaco-worker",
                           "Lease tasks from a dipaco coordinator and train paths.");
  parser.add_flag("--check", "check this host and exit (0 when it can run a worker)", &check);
  parser.add_flag("--version", "print the version and exit", &version);
  parser.add_option("--config", "FILE", "worker config (TOML)", &config);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (dipaco::Status s = parser.parse(args); !s) {
    std::fprintf(stderr, "dipaco-worker: %s\n", s.message().c_str());
    return 2;
  }
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return 0;
  }
  if (version) {
    std::printf("dipaco-worker %s\n", DIPACO_VERSION);
    return 0;
  }
  if (check) {
    std::printf("cpu: %s\n", dipaco::describe_cpu_features(dipaco::cpu_features()).c_str());
    dipaco::CudaRuntimeInfo cuda = dipaco::probe_cuda();
    std::printf("cuda: %zu device(s)%s%s\n", cuda.devices.size(), cuda.devices.empty() ? ": " : "",
                cuda.unavailable_reason.c_str());
    std::printf("backend: cpu available\n");
    return 0;
  }
  std::fprintf(stderr,
               "dipaco-worker %s: the coordinator protocol is not in this build yet; "
               "use --check or --version\n",
               DIPACO_VERSION);
  return 3;
}
