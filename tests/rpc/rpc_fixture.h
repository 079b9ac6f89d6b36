// Helpers shared by the rpc tests: a 2x2 grid run file with real checkpoint and shard files,
// tokens, an in-process coordinator behind a loopback gRPC server, and client calls.
#pragma once

#include <QTemporaryDir>
#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
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
#include "util/atomic_file.h"
#include "util/sha256.h"

namespace rpc_test {

inline constexpr const char* kWorkerToken = "worker-token-0123456789";
inline constexpr const char* kOperatorToken = "operator-token-9876543210";
inline constexpr uint64_t kModuleParams = 5000;  // per module; int8 payload 4*3 + 5000 bytes

// Writes checkpoints, shards, tokens and run.toml (DiPaCo 2x2: path p uses modules p/2 and
// 2 + p%2 and owns shard 10 + p) into `dir`; returns the run file's text.
inline std::string write_run(const QTemporaryDir& dir, uint64_t outer_steps = 2,
                             int64_t lease_timeout_ms = 5000, uint32_t inner_steps = 4) {
  auto path = [&](const std::string& name) {
    return dir.filePath(QString::fromStdString(name)).toStdString();
  };
  for (int m = 0; m < 4; ++m) {
    std::string bytes(kModuleParams * 4, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 31 + m) & 0xff);
    (void)dipaco::write_file_atomically(path("module" + std::to_string(m) + ".v0"), bytes);
  }
  for (int p = 0; p < 4; ++p) {
    std::string tokens(3000 + p, static_cast<char>('a' + p));
    (void)dipaco::write_file_atomically(path("shard" + std::to_string(10 + p) + ".tok"), tokens);
  }
  (void)dipaco::write_file_atomically(path("worker.token"), std::string(kWorkerToken) + "\n");
  (void)dipaco::write_file_atomically(path("operator.token"), std::string(kOperatorToken) + "\n");
  std::string toml = "name = \"rpc test 2x2\"\n";
  toml += "outer_steps = " + std::to_string(outer_steps) + "\n";
  toml += "inner_steps = " + std::to_string(inner_steps) + "\n";
  toml += "lease_timeout_ms = " + std::to_string(lease_timeout_ms) + "\n";
  toml += "[task]\nbatch_size = 2\nseq_len = 16\ngradient_dtype = \"int8\"\ndata_seed = 7\n";
  toml += "model_config = \"[model]\\nlayers = 2\"\n";
  for (int m = 0; m < 4; ++m) {
    toml += "[[modules]]\nid = " + std::to_string(m) + "\nlevel = " + std::to_string(m / 2) +
            "\nindex = " + std::to_string(m % 2) +
            "\nnum_params = " + std::to_string(kModuleParams) +
            "\nparam_offset = " + std::to_string((m / 2) * kModuleParams) +
            "\ncheckpoint = \"module" + std::to_string(m) + ".v0\"\n";
  }
  for (int p = 0; p < 4; ++p) {
    toml += "[[paths]]\nid = " + std::to_string(p) + "\nmodules = [" + std::to_string(p / 2) +
            ", " + std::to_string(2 + p % 2) + "]\nshards = [{ id = " + std::to_string(10 + p) +
            ", tokens = 1000, file = \"shard" + std::to_string(10 + p) + ".tok\" }]\n";
  }
  (void)dipaco::write_file_atomically(path("run.toml"), toml);
  return toml;
}

// The int8 payload of a module filled with `value`.
inline std::string int8_payload(float value = 0.01f) {
  std::vector<float> values(kModuleParams, value);
  std::vector<uint8_t> out;
  (void)dipaco::encode_into(dipaco::WireDtype::kInt8, values, &out);
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
}

// A coordinator with the 2x2 run behind a plaintext loopback server (copy aggregator).
struct Served {
  QTemporaryDir dir;
  std::unique_ptr<dipaco::Coordinator> coordinator;
  std::unique_ptr<dipaco::RpcServer> server;
  int64_t run_id = 0;
  std::unique_ptr<dipaco::v1::Coordinator::Stub> stub;
  // Where the coordinator keeps pushed chunks; set before start() (null = files in dir).
  std::shared_ptr<dipaco::OuterGradientStore> gradient_store;
  uint64_t max_push_chunk_bytes = 1 << 20;  // set by start()
  // CoordinatorOptions' wait hint bound and heartbeat interval (0 = their defaults); together
  // they set how long a silent worker still counts as present. Set before start().
  int64_t max_wait_ms = 0;
  int64_t heartbeat_interval_ms = 0;
  // Changes the run's task config as the hooks give it (e.g. per-module dtypes). Set before
  // start().
  std::function<void(dipaco::TaskConfig&)> adjust_task_config;

  dipaco::Status start(uint64_t outer_steps = 2, int64_t lease_timeout_ms = 5000,
                       uint64_t push_chunk_limit = 1 << 20) {
    max_push_chunk_bytes = push_chunk_limit;
    std::string toml = write_run(dir, outer_steps, lease_timeout_ms);
    dipaco::CoordinatorOptions options;
    options.db_path = dir.filePath("coordinator.db").toStdString();
    options.payload_dir = dir.path().toStdString();
    options.gradient_store = gradient_store;
    options.sqlite.synchronous = dipaco::Synchronous::kOff;
    if (max_wait_ms > 0) {
      options.max_wait_ms = max_wait_ms;
      options.min_wait_ms = std::min(options.min_wait_ms, max_wait_ms);
    }
    if (heartbeat_interval_ms > 0) options.heartbeat_interval_ms = heartbeat_interval_ms;
    auto opened = dipaco::Coordinator::open(options);
    if (!opened.is_ok()) return opened.status();
    coordinator = std::move(opened).value();
    auto planned = dipaco::plan_simple_run(toml, "run.toml", dir.path().toStdString());
    if (!planned.is_ok()) return planned.status();
    auto run = coordinator->create_run(planned->spec);
    if (!run.is_ok()) return run.status();
    run_id = *run;
    if (dipaco::Status started = start_server(); !started.is_ok()) return started;
    dipaco::ChannelOptions channel;
    channel.address = server->target();
    channel.insecure = true;
    auto made = dipaco::make_channel(channel);
    if (!made.is_ok()) return made.status();
    stub = dipaco::v1::Coordinator::NewStub(*made);
    return dipaco::Status::ok();
  }

  // The loopback server in front of the coordinator, at `address` (port 0 = any free one): a
  // coordinator that went away (server.reset()) comes back at its old server->target().
  dipaco::Status start_server(const std::string& address = "127.0.0.1:0") {
    dipaco::ServerOptions server_options;
    server_options.address = address;
    server_options.insecure = true;
    server_options.service.tokens = {kWorkerToken, kOperatorToken};
    server_options.service.hooks = dipaco::simple_run_hooks(dir.path().toStdString());
    if (adjust_task_config) {
      server_options.service.hooks.task_config =
          [inner = server_options.service.hooks.task_config, adjust = adjust_task_config](
              int64_t run, const std::string& config) -> dipaco::Result<dipaco::TaskConfig> {
        auto t = inner(run, config);
        if (t.is_ok()) adjust(*t);
        return t;
      };
    }
    server_options.service.max_push_chunk_bytes = max_push_chunk_bytes;
    server_options.service.download_chunk_bytes = 1000;  // several chunks per file
    server_options.aggregator =
        dipaco::copy_aggregator(dir.path().toStdString(), server_options.service.hooks);
    server_options.poll_ms = 3600000;  // tests call poll_once()
    auto server_started = dipaco::RpcServer::start(*coordinator, std::move(server_options));
    if (!server_started.is_ok()) return server_started.status();
    server = std::move(server_started).value();
    return dipaco::Status::ok();
  }
};

// Waits until `done()` holds (true) or `timeout_ms` passes (false).
template <typename Predicate>
bool wait_until(Predicate done, int timeout_ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// A call context with a token (empty = none) and a 10 s deadline.
inline std::unique_ptr<grpc::ClientContext> context(const std::string& token = kWorkerToken) {
  auto c = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) dipaco::add_bearer_token(*c, token);
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return c;
}

// One push chunk of a module's payload [offset, offset + size).
inline dipaco::v1::OuterGradientChunk make_chunk(const std::string& lease, uint64_t sequence,
                                                 uint32_t module, const std::string& payload,
                                                 uint64_t offset, uint64_t size) {
  dipaco::v1::OuterGradientChunk chunk;
  chunk.set_lease_id(lease);
  chunk.set_sequence(sequence);
  chunk.set_module_id(module);
  chunk.set_dtype(dipaco::v1::DTYPE_INT8);
  chunk.set_num_params(kModuleParams);
  chunk.mutable_chunk()->set_offset_bytes(offset);
  chunk.mutable_chunk()->set_total_bytes(payload.size());
  chunk.mutable_chunk()->set_total_sha256(dipaco::sha256(payload));
  chunk.mutable_chunk()->set_data(payload.substr(offset, size));
  return chunk;
}

// Sends chunks on one stream; returns the status and fills *response.
inline grpc::Status push(dipaco::v1::Coordinator::Stub& stub,
                         const std::vector<dipaco::v1::OuterGradientChunk>& chunks,
                         dipaco::v1::PushOuterGradientResponse* response,
                         const std::string& token = kWorkerToken) {
  auto c = context(token);
  auto writer = stub.PushOuterGradient(c.get(), response);
  for (const auto& chunk : chunks) {
    if (!writer->Write(chunk)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

// Every chunk of a whole task (modules in order, `chunk_bytes` each, sequences from 0).
inline std::vector<dipaco::v1::OuterGradientChunk> task_chunks(const dipaco::v1::Task& task,
                                                               const std::string& payload,
                                                               uint64_t chunk_bytes = 2048) {
  std::vector<dipaco::v1::OuterGradientChunk> chunks;
  uint64_t sequence = 0;
  for (const auto& module : task.modules()) {
    for (uint64_t offset = 0; offset < payload.size(); offset += chunk_bytes)
      chunks.push_back(make_chunk(task.lease_id(), sequence++, module.module_id(), payload, offset,
                                  std::min<uint64_t>(chunk_bytes, payload.size() - offset)));
  }
  return chunks;
}

}  // namespace rpc_test
