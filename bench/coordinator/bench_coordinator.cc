// Load generator: N simulated workers (no training; fake int8 outer gradients of a given module
// size) against one coordinator over loopback gRPC, in this process. Prints lease and push
// latency percentiles and throughput.
//
// The grid: N paths over 2 levels of k = ceil(sqrt(N)) modules each (path p uses modules p % k
// and k + (p / k) % k), one shard per path, so each outer step has N tasks and every worker
// can hold one. Workers are spread over `--threads` client threads; each thread cycles through
// its workers: lease (a grant or a wait hint), then, for a grant, push both modules' gradients
// in 1 MiB chunks on one stream; after a pass without any grant it sleeps the shortest wait
// hint. The copy aggregator publishes each module's next version. Concurrency in flight is the
// thread count, not N: N is the number of registered workers and tasks per outer step.
//
//   dipaco_bench_coordinator --workers 1000 --steps 2 --module-params 100000 --threads 64
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "compress/codec.h"
#include "coordinator/coordinator.h"
#include "dipaco/v1/coordinator.grpc.pb.h"
#include "rpc/auth.h"
#include "rpc/channel.h"
#include "rpc/copy_aggregator.h"
#include "rpc/server.h"
#include "rpc/simple_run_config.h"
#include "util/arg_parser.h"
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = dipaco::v1;

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(std::ceil(p * static_cast<double>(values.size()))) - 1;
  return values[std::min(index, values.size() - 1)];
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t workers = 100, steps = 2, module_params = 100000, threads = 32, status_poll_ms = 200;
  int64_t affinity_grace_ms = 0;
  std::string dir;
  bool memory_sync_off = false;
  dipaco::ArgParser parser("dipaco_bench_coordinator",
                           "N simulated workers against one coordinator over loopback gRPC.");
  parser.add_option("--workers", "N", "simulated workers (= paths = tasks per outer step)",
                    &workers, 1, 100000);
  parser.add_option("--steps", "S", "outer steps", &steps, 1, 1000);
  parser.add_option("--module-params", "P", "parameters per module (int8 on the wire)",
                    &module_params, 1, 1 << 30);
  parser.add_option("--threads", "T", "client threads the workers are spread over", &threads, 1,
                    4096);
  parser.add_option("--status-poll-ms", "MS",
                    "how often the bench asks run_status whether the run finished (it counts every "
                    "task under the coordinator's mutex; the first version of this bench used 20)",
                    &status_poll_ms, 1, 10000);
  parser.add_option("--affinity-grace-ms", "MS",
                    "task affinity as dipaco serve's (0 = off, the default here; serve's is 15000)",
                    &affinity_grace_ms, 0, 3'600'000);
  parser.add_option("--dir", "DIR", "work directory (default: a fresh one under /tmp)", &dir);
  parser.add_flag("--sync-off",
                  "SQLite synchronous=OFF (default FULL: group commit, as dipaco serve)",
                  &memory_sync_off);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (dipaco::Status s = parser.parse(args); !s) {
    std::fprintf(stderr, "%s\n%s", s.message().c_str(), parser.usage().c_str());
    return 2;
  }
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return 0;
  }
  if (dir.empty()) {
    char pattern[] = "/tmp/dipaco-bench-coordinator-XXXXXX";
    dir = mkdtemp(pattern);
  }
  std::filesystem::create_directories(dir + "/payload");
  std::filesystem::create_directories(dir + "/checkpoints");

  // The grid as a simple run file.
  int64_t k = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(workers))));
  std::string checkpoint(static_cast<size_t>(module_params) * 4, '\1');
  if (!dipaco::write_file_atomically(dir + "/module.v0", checkpoint).is_ok()) return 1;
  if (!dipaco::write_file_atomically(dir + "/shard.tok", std::string(4096, 't')).is_ok()) return 1;
  std::string toml = "name = \"bench\"\nouter_steps = " + std::to_string(steps) +
                     "\ninner_steps = 1\nlease_timeout_ms = 600000\n[task]\ngradient_dtype = "
                     "\"int8\"\n";
  for (int64_t m = 0; m < 2 * k; ++m)
    toml += "[[modules]]\nid = " + std::to_string(m) + "\nlevel = " + std::to_string(m / k) +
            "\nindex = " + std::to_string(m % k) +
            "\nnum_params = " + std::to_string(module_params) + "\ncheckpoint = \"module.v0\"\n";
  for (int64_t p = 0; p < workers; ++p)
    toml += "[[paths]]\nid = " + std::to_string(p) + "\nmodules = [" + std::to_string(p % k) +
            ", " + std::to_string(k + (p / k) % k) + "]\nshards = [{ id = " + std::to_string(p) +
            ", tokens = 1000, file = \"shard.tok\" }]\n";
  // Modules no path uses would never aggregate: keep only used ones.
  auto planned = dipaco::plan_simple_run(toml, "bench grid", dir);
  if (!planned.is_ok()) {
    std::fprintf(stderr, "%s\n", planned.status().message().c_str());
    return 1;
  }
  {
    std::vector<bool> used(static_cast<size_t>(2 * k), false);
    for (const auto& path : planned->spec.paths)
      for (uint32_t m : path.module_ids) used[m] = true;
    std::erase_if(planned->spec.modules, [&](const auto& m) { return !used[m.module_id]; });
  }

  dipaco::CoordinatorOptions coordinator_options;
  coordinator_options.db_path = dir + "/coordinator.db";
  coordinator_options.payload_dir = dir + "/payload";
  if (memory_sync_off) coordinator_options.sqlite.synchronous = dipaco::Synchronous::kOff;
  coordinator_options.affinity_grace_ms = affinity_grace_ms;
  auto coordinator = dipaco::Coordinator::open(coordinator_options);
  if (!coordinator.is_ok()) {
    std::fprintf(stderr, "%s\n", coordinator.status().message().c_str());
    return 1;
  }
  auto run = (*coordinator)->create_run(planned->spec);
  if (!run.is_ok()) {
    std::fprintf(stderr, "%s\n", run.status().message().c_str());
    return 1;
  }
  dipaco::ServerOptions server_options;
  server_options.insecure = true;
  server_options.service.tokens = {"bench-worker", "bench-operator"};
  server_options.service.hooks = dipaco::simple_run_hooks(dir);
  server_options.aggregator =
      dipaco::copy_aggregator(dir + "/checkpoints", server_options.service.hooks);
  server_options.poll_ms = 20;
  auto server = dipaco::RpcServer::start(**coordinator, server_options);
  if (!server.is_ok()) {
    std::fprintf(stderr, "%s\n", server.status().message().c_str());
    return 1;
  }

  // One int8 payload reused by every push (its hash computed once).
  std::vector<float> values(static_cast<size_t>(module_params), 0.001f);
  std::vector<uint8_t> encoded;
  if (!dipaco::encode_into(dipaco::WireDtype::kInt8, values, &encoded).is_ok()) return 1;
  std::string payload(reinterpret_cast<const char*>(encoded.data()), encoded.size());
  std::string digest = dipaco::sha256(payload);

  dipaco::ChannelOptions channel_options;
  channel_options.address = (*server)->target();
  channel_options.insecure = true;
  std::mutex results_mutex;
  std::vector<double> lease_ms, wait_ms, push_ms;
  std::atomic<int64_t> errors{0};
  std::atomic<bool> done{false};
  auto start = Clock::now();
  std::vector<std::thread> pool;
  int64_t thread_count = std::min(threads, workers);
  for (int64_t t = 0; t < thread_count; ++t) {
    pool.emplace_back([&, t] {
      // A few channels shared by threads, as separate hosts would have their own.
      auto channel = dipaco::make_channel(channel_options);
      auto stub = v1::Coordinator::NewStub(*channel);
      std::vector<std::string> mine;
      for (int64_t w = t; w < workers; w += thread_count)
        mine.push_back("sim-" + std::to_string(w));
      auto call = [](grpc::ClientContext& c) {
        dipaco::add_bearer_token(c, "bench-worker");
        c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      };
      for (const std::string& id : mine) {
        v1::RegisterRequest request;
        request.set_worker_id(id);
        v1::RegisterResponse response;
        grpc::ClientContext c;
        call(c);
        if (!stub->Register(&c, request, &response).ok()) ++errors;
      }
      std::vector<double> my_lease, my_wait, my_push;
      // As real workers do: after its first lease a worker names the run config it holds (by
      // sha256), and the coordinator stops repeating it.
      std::map<std::string, std::pair<std::string, std::string>> held_config;  // id -> run, sha
      while (!done) {
        bool granted_any = false;
        uint32_t hint_ms = 1000;
        for (const std::string& id : mine) {
          if (done) break;
          v1::LeaseTaskRequest request;
          request.set_session_id(id);
          if (auto held = held_config.find(id); held != held_config.end())
            (*request.mutable_run_config_sha256())[held->second.first] = held->second.second;
          v1::LeaseTaskResponse response;
          grpc::ClientContext c;
          call(c);
          auto t0 = Clock::now();
          grpc::Status s = stub->LeaseTask(&c, request, &response);
          double took = ms_since(t0);
          if (!s.ok()) {
            ++errors;
            continue;
          }
          if (!response.has_task()) {
            my_wait.push_back(took);
            hint_ms = std::min(hint_ms, response.wait_ms());
            continue;
          }
          my_lease.push_back(took);
          granted_any = true;
          const v1::Task& task = response.task();
          held_config[id] = {task.run_id(), task.run_config_sha256()};
          v1::PushOuterGradientResponse pushed;
          grpc::ClientContext pc;
          call(pc);
          auto t1 = Clock::now();
          auto writer = stub->PushOuterGradient(&pc, &pushed);
          uint64_t sequence = 0;
          for (const auto& module : task.modules()) {
            for (size_t offset = 0; offset < payload.size(); offset += 1 << 20) {
              v1::OuterGradientChunk chunk;
              chunk.set_lease_id(task.lease_id());
              chunk.set_sequence(sequence++);
              chunk.set_module_id(module.module_id());
              chunk.set_dtype(v1::DTYPE_INT8);
              chunk.set_num_params(static_cast<uint64_t>(module_params));
              chunk.mutable_chunk()->set_offset_bytes(offset);
              chunk.mutable_chunk()->set_total_bytes(payload.size());
              chunk.mutable_chunk()->set_total_sha256(digest);
              chunk.mutable_chunk()->set_data(payload.substr(offset, 1 << 20));
              writer->Write(chunk);
            }
          }
          writer->WritesDone();
          grpc::Status ps = writer->Finish();
          my_push.push_back(ms_since(t1));
          if (!ps.ok() || !pushed.task_complete()) {
            ++errors;
            std::fprintf(stderr, "push: %s\n", ps.error_message().c_str());
          }
        }
        // Like real workers, honour the coordinator's wait hint when nothing was granted.
        if (!granted_any) std::this_thread::sleep_for(std::chrono::milliseconds(hint_ms));
      }
      std::lock_guard lock(results_mutex);
      lease_ms.insert(lease_ms.end(), my_lease.begin(), my_lease.end());
      wait_ms.insert(wait_ms.end(), my_wait.begin(), my_wait.end());
      push_ms.insert(push_ms.end(), my_push.begin(), my_push.end());
    });
  }
  while (true) {
    auto status = (*coordinator)->run_status(*run);
    if (status.is_ok() && status->state == "finished") break;
    if (ms_since(start) > 170000) {
      std::fprintf(stderr, "stopping after 170 s: the run did not finish\n");
      break;
    }
    // run_status counts every task of the run under the coordinator's mutex: poll gently.
    std::this_thread::sleep_for(std::chrono::milliseconds(status_poll_ms));
  }
  double seconds = ms_since(start) / 1000.0;
  done = true;
  for (auto& thread : pool) thread.join();
  (*server)->shutdown();
  auto status = (*coordinator)->run_status(*run);
  double mb = static_cast<double>(push_ms.size()) * 2.0 * static_cast<double>(payload.size()) / 1e6;
  std::printf(
      "workers %lld (client threads %lld), outer steps %lld, modules %zu of %lld params (int8 %zu "
      "bytes), SQLite synchronous=%s\n",
      static_cast<long long>(workers), static_cast<long long>(thread_count),
      static_cast<long long>(steps), planned->spec.modules.size(),
      static_cast<long long>(module_params), payload.size(), memory_sync_off ? "OFF" : "FULL");
  std::printf("tasks done %lld in %.2f s: %.1f tasks/s, %.1f MB/s of gradients pushed\n",
              static_cast<long long>(status.is_ok() ? status->tasks_done : -1), seconds,
              static_cast<double>(push_ms.size()) / seconds, mb / seconds);
  std::printf("lease (grant)  n=%zu p50 %.2f ms p99 %.2f ms\n", lease_ms.size(),
              percentile(lease_ms, 0.5), percentile(lease_ms, 0.99));
  std::printf("lease (wait)   n=%zu p50 %.2f ms p99 %.2f ms\n", wait_ms.size(),
              percentile(wait_ms, 0.5), percentile(wait_ms, 0.99));
  std::printf("push (2 mods)  n=%zu p50 %.2f ms p99 %.2f ms\n", push_ms.size(),
              percentile(push_ms, 0.5), percentile(push_ms, 0.99));
  auto durability = (*coordinator)->durability_stats();
  std::printf("group commit: %llu calls waited for the disk, %llu WAL fdatasyncs (%.1f per sync)\n",
              static_cast<unsigned long long>(durability.durable_calls),
              static_cast<unsigned long long>(durability.syncs),
              durability.syncs == 0 ? 0.0
                                    : static_cast<double>(durability.durable_calls) /
                                          static_cast<double>(durability.syncs));
  std::printf("errors %lld; work dir %s\n", static_cast<long long>(errors.load()), dir.c_str());
  return errors.load() == 0 && status.is_ok() && status->state == "finished" ? 0 : 1;
}
