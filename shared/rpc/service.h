// CoordinatorService: the gRPC face of the Coordinator (proto/dipaco/v1/coordinator.proto).
//
// Each RPC authorizes its caller (rpc/auth.h), translates ids (the proto's decimal-string run
// and lease ids, session id = worker id) and calls one Coordinator method. Refusals are gRPC
// statuses whose message says what to fix:
//   INVALID_ARGUMENT     malformed request: bad id, wrong dtype/num_params/total_bytes for the
//                        module, chunk over max_chunk_bytes, payload not finite (NaN/Inf)
//   NOT_FOUND            unknown run, module version, shard, or unregistered worker (register)
//   FAILED_PRECONDITION  the lease is dead, unknown or someone else's (push refused, recorded)
//   DATA_LOSS            a whole module's payload does not match the sha256 its chunks carry,
//                        or a checkpoint on disk no longer matches its recorded hash
//   OUT_OF_RANGE         a download resumed past the end of the file
//   UNAUTHENTICATED / PERMISSION_DENIED   see auth.h
// A refused request changes no coordinator state (a push for a dead lease only records a
// kPushRefused event).
//
// Pushes. Every chunk is checked against the run's TaskConfig (dtype, num_params, and
// total_bytes = encoded_size(dtype, num_params)) before the coordinator sees it. The chunk that
// would make a module whole is held back until the whole payload (earlier chunks read back from
// the gradient store, plus this one) matches the chunk's total_sha256 and decodes to finite
// values with compress/codec.h; only then is it accepted, so a module is never counted with a
// corrupt or non-finite gradient. Chunks of one lease are serialized (a lock stripe by lease id).
// A stream that ends before its modules are whole returns OK with task_complete = false and a
// reason naming the missing bytes; its accepted chunks stay, so a retry resumes (same sequences
// are acknowledged, not counted twice). PushProgress lists the sequences a lease's push already
// has, so that a worker whose stream broke sends only the rest.
//
// Downloads (FetchModule, FetchShard) stream files in chunks of `download_chunk_bytes`, each
// with the total size and the sha256 of the whole file; a request may resume at an offset.
// Module checkpoints are verified against their recorded sha256 before the first byte is sent
// (once per file, cached by path, size and mtime). FetchModule with as_delta streams the delta
// file of RunHooks::module_delta_file instead (NOT_FOUND when there is none); its chunks carry
// the delta file's hash, and the worker checks what it rebuilds against the recorded version.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "coordinator/coordinator.h"
#include "dipaco/v1/coordinator.grpc.pb.h"  // generated from proto/dipaco/v1/coordinator.proto
#include "rpc/auth.h"
#include "rpc/task_config.h"

namespace dipaco {

struct ServiceOptions {
  AuthTokens tokens;  // the tokens at start; CoordinatorService::set_tokens replaces them
  RunHooks hooks;
  uint64_t download_chunk_bytes = 1 << 20;  // FetchModule / FetchShard chunk payload
  uint64_t max_push_chunk_bytes = 1 << 20;  // larger push chunks are INVALID_ARGUMENT
  int64_t watch_poll_ms = 200;              // WatchRun polls the events table this often
};

// Maps util Status codes onto gRPC status codes, keeping the message.
grpc::Status to_grpc(const Status& status);

class CoordinatorService final : public dipaco::v1::Coordinator::Service {
 public:
  // `coordinator` must outlive the service.
  CoordinatorService(Coordinator& coordinator, ServiceOptions options);

  // Ends WatchRun streams (call before grpc::Server::Shutdown so that it does not wait).
  void stop_watches() { stopping_ = true; }

  // Replaces the accepted tokens (dipaco serve's SIGHUP), checked by the caller
  // (check_auth_tokens). Calls already authorized go on; every later call is checked against
  // the new ones. Connections stay open.
  void set_tokens(AuthTokens tokens);

  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterRequest* request,
                        v1::RegisterResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status LeaseTask(grpc::ServerContext* context, const v1::LeaseTaskRequest* request,
                         v1::LeaseTaskResponse* response) override;
  grpc::Status FetchModule(grpc::ServerContext* context, const v1::FetchModuleRequest* request,
                           grpc::ServerWriter<v1::Chunk>* writer) override;
  grpc::Status FetchShard(grpc::ServerContext* context, const v1::FetchShardRequest* request,
                          grpc::ServerWriter<v1::Chunk>* writer) override;
  grpc::Status PushOuterGradient(grpc::ServerContext* context,
                                 grpc::ServerReader<v1::OuterGradientChunk>* reader,
                                 v1::PushOuterGradientResponse* response) override;
  grpc::Status PushProgress(grpc::ServerContext* context, const v1::PushProgressRequest* request,
                            v1::PushProgressResponse* response) override;
  grpc::Status ReportMetrics(grpc::ServerContext* context, const v1::ReportMetricsRequest* request,
                             v1::ReportMetricsResponse* response) override;
  grpc::Status ReleaseLease(grpc::ServerContext* context, const v1::ReleaseLeaseRequest* request,
                            v1::ReleaseLeaseResponse* response) override;
  grpc::Status Unregister(grpc::ServerContext* context, const v1::UnregisterRequest* request,
                          v1::UnregisterResponse* response) override;

  grpc::Status CreateRun(grpc::ServerContext* context, const v1::CreateRunRequest* request,
                         v1::CreateRunResponse* response) override;
  grpc::Status Pause(grpc::ServerContext* context, const v1::RunRequest* request,
                     v1::OperatorResponse* response) override;
  grpc::Status Resume(grpc::ServerContext* context, const v1::RunRequest* request,
                      v1::OperatorResponse* response) override;
  grpc::Status DrainWorker(grpc::ServerContext* context, const v1::DrainWorkerRequest* request,
                           v1::OperatorResponse* response) override;
  grpc::Status UndrainWorker(grpc::ServerContext* context, const v1::DrainWorkerRequest* request,
                             v1::OperatorResponse* response) override;
  grpc::Status ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest* request,
                           v1::ListWorkersResponse* response) override;
  grpc::Status PreemptTask(grpc::ServerContext* context, const v1::PreemptTaskRequest* request,
                           v1::OperatorResponse* response) override;
  grpc::Status SetInnerSteps(grpc::ServerContext* context, const v1::SetInnerStepsRequest* request,
                             v1::OperatorResponse* response) override;
  grpc::Status WatchRun(grpc::ServerContext* context, const v1::RunRequest* request,
                        grpc::ServerWriter<v1::RunEvent>* writer) override;

 private:
  // The tokens now accepted. RPC handlers authorize with `*tokens()`: options_.tokens is
  // emptied at construction (a handler that used it would refuse every call).
  std::shared_ptr<const AuthTokens> tokens() const;

  // The run's TaskConfig from its stored config, parsed once per run (configs are immutable).
  Result<std::shared_ptr<const TaskConfig>> task_config(int64_t run_id);
  // The run's stored config and its sha256 (hex), read once per run.
  struct RunConfigText {
    std::string text;
    std::string sha256_hex;
  };
  Result<std::shared_ptr<const RunConfigText>> run_config_text(int64_t run_id);
  // Streams `path` from `offset`; expected_sha256 (raw) empty = hash the file (cached).
  grpc::Status stream_file(grpc::ServerContext* context, const std::string& path,
                           const std::string& expected_sha256, uint64_t offset,
                           grpc::ServerWriter<v1::Chunk>* writer);
  // sha256 of a file, cached by (path, size, mtime).
  Result<std::string> file_digest(const std::string& path);
  // Checks and applies one push chunk; sets *task_complete when the lease's task completed.
  grpc::Status push_one(const v1::OuterGradientChunk& message, bool* task_complete);

  Coordinator& coordinator_;
  ServiceOptions options_;
  mutable std::mutex tokens_mutex_;
  std::shared_ptr<const AuthTokens> tokens_;  // under tokens_mutex_; swapped whole
  std::atomic<bool> stopping_{false};
  std::array<std::mutex, 64> lease_locks_;
  std::mutex configs_mutex_;
  std::map<int64_t, std::shared_ptr<const TaskConfig>> configs_;
  std::map<int64_t, std::shared_ptr<const RunConfigText>> config_texts_;  // under configs_mutex_
  std::mutex digests_mutex_;
  std::map<std::string, std::string> digests_;  // "path|size|mtime" -> raw sha256
};

}  // namespace dipaco
