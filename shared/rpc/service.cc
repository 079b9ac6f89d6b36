#include "rpc/service.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "compress/codec.h"
#include "rpc/wire.h"
#include "util/sha256.h"

namespace dipaco {
namespace {

grpc::Status bad(grpc::StatusCode code, const std::string& message) {
  return {code, message};
}

// Parses a decimal id; `what` names it in the error ("run id", "lease id").
Result<int64_t> parse_id(const std::string& text, const char* what) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value <= 0)
    return invalid_argument(std::string(what) + " '" + text +
                            "' is not an id (a positive decimal number, as the coordinator "
                            "returned it)");
  return value;
}

// RegisterResponse.session_id: the worker id, and the process's instance after kSessionSeparator
// when it sent one, so that every later call says which process makes it. The worker treats the
// session as opaque; a session without the separator (older workers) is the plain worker id.
constexpr char kSessionSeparator = '\x1f';  // ASCII unit separator: never in a worker id

struct WorkerSession {
  std::string worker_id;
  std::string instance_id;  // empty: not checked
};

std::string make_session(const std::string& worker_id, const std::string& instance_id) {
  if (instance_id.empty()) return worker_id;
  return worker_id + kSessionSeparator + instance_id;
}

WorkerSession parse_session(const std::string& session) {
  const size_t separator = session.rfind(kSessionSeparator);
  if (separator == std::string::npos) return {session, {}};
  return {session.substr(0, separator), session.substr(separator + 1)};
}

// The worker's devices as one line for `dipaco ctl workers` and the studio: equal devices in a
// row are counted ("8x NVIDIA H100 80GB HBM3 81559 MiB cc 9.0"), groups are joined by "; ".
std::string describe_devices(const google::protobuf::RepeatedPtrField<v1::Device>& devices) {
  auto one = [](const v1::Device& device) {
    std::string text = device.name();
    if (device.memory_bytes() > 0)
      text += " " + std::to_string(device.memory_bytes() >> 20) + " MiB";
    if (!device.compute_capability().empty()) text += " cc " + device.compute_capability();
    return text;
  };
  std::string line;
  for (int i = 0; i < devices.size();) {
    const std::string text = one(devices[i]);
    int same = 1;
    while (i + same < devices.size() && one(devices[i + same]) == text) ++same;
    if (!line.empty()) line += "; ";
    line += (same > 1 ? std::to_string(same) + "x " : std::string()) + text;
    i += same;
  }
  return line;
}

}  // namespace

grpc::Status to_grpc(const Status& status) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (status.code()) {
    case StatusCode::kOk: return grpc::Status::OK;
    case StatusCode::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case StatusCode::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case StatusCode::kDataLoss: code = grpc::StatusCode::DATA_LOSS; break;
    case StatusCode::kFailedPrecondition: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    case StatusCode::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
    case StatusCode::kIoError:
    case StatusCode::kInternal: code = grpc::StatusCode::INTERNAL; break;
  }
  return {code, status.message()};
}

CoordinatorService::CoordinatorService(Coordinator& coordinator, ServiceOptions options)
    : coordinator_(coordinator),
      options_(std::move(options)),
      tokens_(std::make_shared<const AuthTokens>(std::move(options_.tokens))) {
  options_.tokens = {};  // tokens() is the only source: a reload replaces it
}

void CoordinatorService::set_tokens(AuthTokens tokens) {
  auto replacement = std::make_shared<const AuthTokens>(std::move(tokens));
  std::lock_guard lock(tokens_mutex_);
  tokens_.swap(replacement);
}

std::shared_ptr<const AuthTokens> CoordinatorService::tokens() const {
  std::lock_guard lock(tokens_mutex_);
  return tokens_;
}

Result<std::shared_ptr<const TaskConfig>> CoordinatorService::task_config(int64_t run_id) {
  {
    std::lock_guard lock(configs_mutex_);
    auto found = configs_.find(run_id);
    if (found != configs_.end()) return found->second;
  }
  DIPACO_ASSIGN_OR_RETURN(std::shared_ptr<const RunConfigText> config, run_config_text(run_id));
  if (!options_.hooks.task_config)
    return internal_error("this coordinator has no task-config provider (RunHooks::task_config)");
  DIPACO_ASSIGN_OR_RETURN(TaskConfig parsed, options_.hooks.task_config(run_id, config->text));
  auto shared = std::make_shared<const TaskConfig>(std::move(parsed));
  std::lock_guard lock(configs_mutex_);
  configs_[run_id] = shared;  // a run's config never changes after create_run
  return std::shared_ptr<const TaskConfig>(shared);
}

Result<std::shared_ptr<const CoordinatorService::RunConfigText>>
CoordinatorService::run_config_text(int64_t run_id) {
  {
    std::lock_guard lock(configs_mutex_);
    auto found = config_texts_.find(run_id);
    if (found != config_texts_.end()) return found->second;
  }
  DIPACO_ASSIGN_OR_RETURN(std::string text, coordinator_.run_config(run_id));
  auto entry = std::make_shared<RunConfigText>();
  entry->sha256_hex = sha256_hex(text);
  entry->text = std::move(text);
  std::lock_guard lock(configs_mutex_);
  config_texts_[run_id] = entry;
  return std::shared_ptr<const RunConfigText>(entry);
}

// ---- workers --------------------------------------------------------------------------------

grpc::Status CoordinatorService::Register(grpc::ServerContext* context,
                                          const v1::RegisterRequest* request,
                                          v1::RegisterResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kWorker); !s.ok()) return s;
  WorkerInfo info;
  info.worker_id = request->worker_id();
  info.host = request->host();
  info.version = request->version();
  info.instance_id = request->instance_id().substr(0, 64);
  if (info.worker_id.find(kSessionSeparator) != std::string::npos ||
      info.instance_id.find(kSessionSeparator) != std::string::npos)
    return bad(grpc::StatusCode::INVALID_ARGUMENT,
               "worker id and instance id must not contain control character 0x1f");
  info.devices = describe_devices(request->devices());
  auto registered = coordinator_.register_worker(info);
  if (!registered.is_ok()) return to_grpc(registered.status());
  if (!registered->refusal.empty())
    return bad(grpc::StatusCode::ALREADY_EXISTS, registered->refusal);
  response->set_session_id(make_session(info.worker_id, info.instance_id));
  response->set_drain(registered->drain);
  response->set_heartbeat_interval_ms(
      static_cast<uint32_t>(std::clamp<int64_t>(registered->heartbeat_interval_ms, 1, 3600000)));
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Heartbeat(grpc::ServerContext* context,
                                           const v1::HeartbeatRequest* request,
                                           v1::HeartbeatResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kWorker); !s.ok()) return s;
  int64_t lease_id = 0;
  if (!request->lease_id().empty()) {
    auto parsed = parse_id(request->lease_id(), "lease id");
    if (!parsed.is_ok()) return to_grpc(parsed.status());
    lease_id = *parsed;
  }
  const WorkerSession session = parse_session(request->session_id());
  auto reply = coordinator_.heartbeat(session.worker_id, lease_id, request->inner_step(),
                                      session.instance_id);
  if (!reply.is_ok()) return to_grpc(reply.status());
  response->set_lease_valid(reply->lease_valid);
  response->set_drain(reply->drain);
  response->set_lease_deadline_unix_ms(static_cast<uint64_t>(reply->lease_deadline_ms));
  response->set_reason(reply->reason);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::LeaseTask(grpc::ServerContext* context,
                                           const v1::LeaseTaskRequest* request,
                                           v1::LeaseTaskResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kWorker); !s.ok()) return s;
  const WorkerSession session = parse_session(request->session_id());
  auto reply = coordinator_.lease_task(session.worker_id, session.instance_id);
  if (!reply.is_ok()) return to_grpc(reply.status());
  response->set_drain(reply->drain);
  // Which of the worker's cached runs will never lease again: finished (a final state) or not a
  // run of this coordinator. Ids not spelled as this coordinator spells run ids are left out.
  if (request->cached_run_ids_size() > 0) {
    if (auto active = coordinator_.active_runs(); active.is_ok()) {
      for (const std::string& id : request->cached_run_ids()) {
        auto run = parse_id(id, "run id");
        if (!run.is_ok() || std::to_string(*run) != id) continue;
        if (!std::binary_search(active->begin(), active->end(), *run))
          response->add_ended_run_ids(id);
      }
    }
  }
  if (!reply->task) {
    response->set_wait_ms(static_cast<uint32_t>(std::clamp<int64_t>(reply->wait_ms, 1, 600000)));
    response->set_reason(reply->reason);
    return grpc::Status::OK;
  }
  const TaskGrant& grant = *reply->task;
  auto config_or = task_config(grant.run_id);
  if (!config_or.is_ok())
    return to_grpc(config_or.status().with_context(
        "run " + std::to_string(grant.run_id) + " task config (lease " +
        std::to_string(grant.lease_id) + " stays live)"));
  const std::shared_ptr<const TaskConfig>& config = *config_or;
  v1::Task* task = response->mutable_task();
  task->set_lease_id(std::to_string(grant.lease_id));
  task->set_run_id(std::to_string(grant.run_id));
  task->set_path_id(grant.path_id);
  task->set_shard_id(grant.shard_id);
  task->set_outer_step(grant.outer_step);
  task->set_inner_steps(grant.inner_steps);
  task->set_batch_size(config->batch_size);
  task->set_seq_len(config->seq_len);
  task->set_gradient_dtype(to_proto_dtype(config->gradient_dtype));
  task->set_module_delta_dtype(to_proto_dtype(config->module_delta_dtype));
  task->set_lease_deadline_unix_ms(static_cast<uint64_t>(grant.deadline_ms));
  task->set_model_config_toml(config->model_config_toml);
  task->set_data_seed(config->data_seed);
  if (auto stored = run_config_text(grant.run_id); stored.is_ok()) {
    const RunConfigText& run_config = **stored;
    task->set_run_config_sha256(run_config.sha256_hex);
    auto held = request->run_config_sha256().find(task->run_id());
    if (held == request->run_config_sha256().end() || held->second != run_config.sha256_hex)
      task->set_run_config(run_config.text);
  }
  v1::InnerOptimizer* inner = task->mutable_inner();
  inner->set_lr(config->inner.lr);
  inner->set_beta1(config->inner.beta1);
  inner->set_beta2(config->inner.beta2);
  inner->set_eps(config->inner.eps);
  inner->set_weight_decay(config->inner.weight_decay);
  inner->set_grad_clip(config->inner.grad_clip);
  inner->set_warmup_steps(config->inner.warmup_steps);
  for (const ModuleRef& module : grant.modules) {
    auto layout = config->modules.find(module.module_id);
    if (layout == config->modules.end())
      return bad(grpc::StatusCode::INTERNAL, "run " + std::to_string(grant.run_id) +
                                                 " task config has no layout for module " +
                                                 std::to_string(module.module_id));
    auto digest = from_hex(module.sha256);
    v1::ModuleRef* ref = task->add_modules();
    ref->set_module_id(module.module_id);
    ref->set_version(module.version);
    ref->set_num_params(layout->second.num_params);
    ref->set_param_offset(layout->second.param_offset);
    const WireDtype gradient_dtype = layout->second.gradient_dtype.value_or(config->gradient_dtype);
    ref->set_gradient_bytes(encoded_size(gradient_dtype, layout->second.num_params));
    if (layout->second.gradient_dtype)
      ref->set_gradient_dtype(to_proto_dtype(*layout->second.gradient_dtype));
    if (layout->second.module_delta_dtype)
      ref->set_module_delta_dtype(to_proto_dtype(*layout->second.module_delta_dtype));
    ref->set_push_params(layout->second.push_params);
    if (digest.is_ok()) ref->set_sha256(*digest);
  }
  return grpc::Status::OK;
}

// ---- downloads ------------------------------------------------------------------------------

Result<std::string> CoordinatorService::file_digest(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return io_error(path + ": " + std::strerror(errno));
  std::string key = path + "|" + std::to_string(info.st_size) + "|" +
                    std::to_string(info.st_mtim.tv_sec) + "." +
                    std::to_string(info.st_mtim.tv_nsec);
  {
    std::lock_guard lock(digests_mutex_);
    auto found = digests_.find(key);
    if (found != digests_.end()) return found->second;
  }
  DIPACO_ASSIGN_OR_RETURN(std::string digest, sha256_file(path));
  std::lock_guard lock(digests_mutex_);
  digests_[key] = digest;
  return digest;
}

grpc::Status CoordinatorService::stream_file(grpc::ServerContext* context, const std::string& path,
                                             const std::string& expected_sha256, uint64_t offset,
                                             grpc::ServerWriter<v1::Chunk>* writer) {
  auto digest = file_digest(path);
  if (!digest.is_ok()) return to_grpc(digest.status());
  if (!expected_sha256.empty() && *digest != expected_sha256)
    return bad(grpc::StatusCode::DATA_LOSS,
               path + " has sha256 " + to_hex(*digest) + " but the coordinator recorded " +
                   to_hex(expected_sha256) + ": the file changed on disk; restore it");
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr)
    return bad(grpc::StatusCode::INTERNAL, path + ": cannot open: " + std::strerror(errno));
  std::fseek(file, 0, SEEK_END);
  uint64_t total = static_cast<uint64_t>(std::ftell(file));
  if (offset > total) {
    std::fclose(file);
    return bad(grpc::StatusCode::OUT_OF_RANGE, "offset " + std::to_string(offset) +
                                                   " is past the end of the " +
                                                   std::to_string(total) + "-byte file");
  }
  std::fseek(file, static_cast<long>(offset), SEEK_SET);
  std::string buffer(options_.download_chunk_bytes, '\0');
  v1::Chunk chunk;
  chunk.set_total_bytes(total);
  chunk.set_total_sha256(*digest);
  uint64_t position = offset;
  grpc::Status result = grpc::Status::OK;
  // An empty file still gets one (empty) chunk so that the client learns size and hash.
  do {
    if (context->IsCancelled()) {
      result = bad(grpc::StatusCode::CANCELLED, "the client cancelled the download");
      break;
    }
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), total - position));
    size_t got = want == 0 ? 0 : std::fread(buffer.data(), 1, want, file);
    if (got != want) {
      result =
          bad(grpc::StatusCode::INTERNAL, path + ": short read at " + std::to_string(position));
      break;
    }
    chunk.set_offset_bytes(position);
    chunk.set_data(buffer.data(), got);
    if (!writer->Write(chunk)) break;  // the client went away
    position += got;
  } while (position < total);
  std::fclose(file);
  return result;
}

grpc::Status CoordinatorService::FetchModule(grpc::ServerContext* context,
                                             const v1::FetchModuleRequest* request,
                                             grpc::ServerWriter<v1::Chunk>* writer) {
  if (auto s = authorize(*context, *tokens(), Role::kWorker); !s.ok()) return s;
  auto run = parse_id(request->run_id(), "run id");
  if (!run.is_ok()) return to_grpc(run.status());
  auto ref = coordinator_.module_version(*run, request->module_id(), request->version());
  if (!ref.is_ok()) return to_grpc(ref.status());
  if (!*ref)
    return bad(grpc::StatusCode::NOT_FOUND, "run " + request->run_id() + " has no module " +
                                                std::to_string(request->module_id()) + " version " +
                                                std::to_string(request->version()));
  if (request->as_delta()) {
    // The delta's own hash travels with its chunks; its content names the versions it joins
    // (the worker checks the rebuilt version against the recorded sha256).
    if (!options_.hooks.module_delta_file || request->version() == 0)
      return bad(grpc::StatusCode::NOT_FOUND,
                 "no delta for module " + std::to_string(request->module_id()) + " version " +
                     std::to_string(request->version()) + "; fetch the whole version");
    auto config = coordinator_.run_config(*run);
    if (!config.is_ok()) return to_grpc(config.status());
    auto delta =
        options_.hooks.module_delta_file(*run, *config, request->module_id(), request->version());
    if (!delta.is_ok()) return to_grpc(delta.status());
    struct stat info {};
    if (stat(delta->c_str(), &info) != 0)
      return bad(grpc::StatusCode::NOT_FOUND,
                 "module " + std::to_string(request->module_id()) + " version " +
                     std::to_string(request->version()) +
                     " has no delta on this coordinator; fetch the whole version");
    return stream_file(context, *delta, "", request->offset_bytes(), writer);
  }
  auto expected = from_hex((*ref)->sha256);
  if (!expected.is_ok() || expected->size() != 32)
    return bad(grpc::StatusCode::DATA_LOSS, "module " + std::to_string(request->module_id()) +
                                                " version " + std::to_string(request->version()) +
                                                " has no valid recorded sha256 ('" +
                                                (*ref)->sha256 + "')");
  return stream_file(context, (*ref)->checkpoint, *expected, request->offset_bytes(), writer);
}

grpc::Status CoordinatorService::FetchShard(grpc::ServerContext* context,
                                            const v1::FetchShardRequest* request,
                                            grpc::ServerWriter<v1::Chunk>* writer) {
  if (auto s = authorize(*context, *tokens(), Role::kWorker); !s.ok()) return s;
  auto run = parse_id(request->run_id(), "run id");
  if (!run.is_ok()) return to_grpc(run.status());
  if (!options_.hooks.shard_file)
    return bad(grpc::StatusCode::UNIMPLEMENTED,
               "this coordinator has no shard resolver; workers need a shared filesystem");
  auto config = coordinator_.run_config(*run);
  if (!config.is_ok()) return to_grpc(config.status());
  auto path = options_.hooks.shard_file(*run, *config, request->shard_id());
  if (!path.is_ok()) return to_grpc(path.status());
  return stream_file(context, *path, "", request->offset_bytes(), writer);
}

// ---- pushes ---------------------------------------------------------------------------------

grpc::Status CoordinatorService::push_one(const v1::OuterGradientChunk& message,
                                          bool* task_complete) {
  auto lease_id = parse_id(message.lease_id(), "lease id");
  if (!lease_id.is_ok()) return to_grpc(lease_id.status());
  std::string where = "lease " + message.lease_id() + " sequence " +
                      std::to_string(message.sequence()) + " module " +
                      std::to_string(message.module_id());
  const v1::Chunk& chunk = message.chunk();
  if (chunk.data().size() > options_.max_push_chunk_bytes)
    return bad(grpc::StatusCode::INVALID_ARGUMENT,
               where + ": chunk of " + std::to_string(chunk.data().size()) +
                   " bytes is over the limit of " + std::to_string(options_.max_push_chunk_bytes) +
                   "; split the payload into smaller chunks");
  if (chunk.total_sha256().size() != 32)
    return bad(grpc::StatusCode::INVALID_ARGUMENT,
               where + ": total_sha256 must be the 32-byte sha256 of the module's payload");

  std::lock_guard lease_lock(lease_locks_[static_cast<size_t>(*lease_id) % lease_locks_.size()]);
  auto lease = coordinator_.lease_summary(*lease_id);
  if (!lease.is_ok()) return to_grpc(lease.status());
  PushChunk push;
  push.lease_id = *lease_id;
  push.sequence = message.sequence();
  push.module_id = message.module_id();
  push.offset_bytes = chunk.offset_bytes();
  push.total_bytes = chunk.total_bytes();
  push.data = chunk.data();

  auto refuse = [&](const std::string& reason) {
    // Recorded as a kPushRefused event by the coordinator; nothing is stored.
    (void)coordinator_.accept_push(push);
    return bad(grpc::StatusCode::FAILED_PRECONDITION, where + ": refused: " + reason);
  };
  if (!*lease) return refuse("lease " + message.lease_id() + " is unknown");

  // Shape: the run's dtype and the module's parameter count fix the payload size.
  auto config_or = task_config((*lease)->run_id);
  if (!config_or.is_ok()) return to_grpc(config_or.status());
  const std::shared_ptr<const TaskConfig>& config = *config_or;
  auto layout = config->modules.find(message.module_id());
  if (layout == config->modules.end() ||
      std::find((*lease)->module_ids.begin(), (*lease)->module_ids.end(), message.module_id()) ==
          (*lease)->module_ids.end())
    return bad(grpc::StatusCode::INVALID_ARGUMENT,
               where + ": module " + std::to_string(message.module_id()) + " is not on path " +
                   std::to_string((*lease)->path_id) + " of this lease");
  auto dtype = from_proto_dtype(message.dtype());
  if (!dtype.is_ok()) return to_grpc(dtype.status().with_context(where));
  // The module's own dtype, or the run's: a worker that predates ModuleRef.gradient_dtype and
  // push_params pushes every module's outer gradient in the run's dtype (the aggregator tells
  // it from trained parameters by its size, run/module_wire.h).
  const WireDtype module_dtype = layout->second.gradient_dtype.value_or(config->gradient_dtype);
  const std::string module_name = "module " + std::to_string(message.module_id());
  if (message.params() && !layout->second.push_params)
    return bad(grpc::StatusCode::INVALID_ARGUMENT,
               where + ": trained parameters for " + module_name +
                   ", which takes outer gradients (a shared module, or any module of a run whose "
                   "dtype is fp32)");
  if (*dtype != module_dtype && *dtype != config->gradient_dtype)
    return bad(grpc::StatusCode::INVALID_ARGUMENT,
               where + ": dtype " + wire_dtype_name(*dtype) + " but run " +
                   std::to_string((*lease)->run_id) + " pushes " + module_name + " in " +
                   wire_dtype_name(module_dtype));
  if (layout->second.push_params) {
    const uint64_t n = layout->second.num_params;
    const bool trained_params = message.params() && *dtype == module_dtype;
    const bool older_worker = !message.params() && *dtype == config->gradient_dtype &&
                              encoded_size(*dtype, n) != encoded_size(module_dtype, n);
    if (!trained_params && !older_worker)
      return bad(grpc::StatusCode::INVALID_ARGUMENT,
                 where + ": " + module_name + " is path-specific: push its trained parameters in " +
                     wire_dtype_name(module_dtype) +
                     " (OuterGradientChunk.params); a worker that predates that must be upgraded");
  }
  if (message.num_params() != layout->second.num_params)
    return bad(grpc::StatusCode::INVALID_ARGUMENT,
               where + ": num_params " + std::to_string(message.num_params()) + " but module " +
                   std::to_string(message.module_id()) + " has " +
                   std::to_string(layout->second.num_params));
  uint64_t expected_bytes = encoded_size(*dtype, layout->second.num_params);
  if (chunk.total_bytes() != expected_bytes)
    return bad(grpc::StatusCode::INVALID_ARGUMENT,
               where + ": total_bytes " + std::to_string(chunk.total_bytes()) + " but " +
                   std::to_string(layout->second.num_params) + " params in " +
                   wire_dtype_name(*dtype) + " take " + std::to_string(expected_bytes) + " (" +
                   wire_layout_formula(*dtype) + ")");

  auto begin = coordinator_.begin_push(*lease_id, message.module_id(), message.sequence());
  if (!begin.is_ok()) return to_grpc(begin.status().with_context(where));
  if (begin->duplicate) {
    // accept_push checks that the retry matches what was accepted.
    auto again = coordinator_.accept_push(push);
    if (!again.is_ok()) return to_grpc(again.status());
    return grpc::Status::OK;
  }
  if (!begin->accepted) return refuse(begin->reason);

  // Would this chunk make the module whole? Then check the whole payload first.
  auto stored = coordinator_.stored_chunks(*lease_id, message.module_id());
  if (!stored.is_ok()) return to_grpc(stored.status());
  uint64_t received = 0;
  for (const StoredChunk& c : *stored) received += c.size_bytes;
  if (received + chunk.data().size() == chunk.total_bytes()) {
    auto earlier = coordinator_.read_chunks(*stored);
    if (!earlier.is_ok()) return to_grpc(earlier.status());
    std::string whole(chunk.total_bytes(), '\0');
    size_t from = 0;
    for (const StoredChunk& c : *stored) {
      whole.replace(c.offset_bytes, c.size_bytes, *earlier, from, c.size_bytes);
      from += c.size_bytes;
    }
    if (chunk.offset_bytes() + chunk.data().size() <= whole.size())
      whole.replace(chunk.offset_bytes(), chunk.data().size(), chunk.data());
    std::string digest = sha256(whole);
    if (digest != chunk.total_sha256())
      return bad(grpc::StatusCode::DATA_LOSS,
                 where + ": the module's " + std::to_string(whole.size()) + " bytes hash to " +
                     to_hex(digest) + " but the chunks say " + to_hex(chunk.total_sha256()) +
                     "; a chunk was corrupted or overlaps another (the module is not counted)");
    std::vector<float> values(layout->second.num_params);
    Status decoded = decode_into(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(whole.data()), whole.size()),
        *dtype, values);
    if (!decoded.is_ok())
      return bad(grpc::StatusCode::INVALID_ARGUMENT,
                 where + ": the outer gradient does not decode to finite values (" +
                     decoded.message() + "); the module is not counted");
  }
  auto accepted = coordinator_.accept_push(push);
  if (!accepted.is_ok()) return to_grpc(accepted.status());
  if (!accepted->accepted) return refuse(accepted->reason);
  if (accepted->task_complete) *task_complete = true;
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::PushOuterGradient(
    grpc::ServerContext* context, grpc::ServerReader<v1::OuterGradientChunk>* reader,
    v1::PushOuterGradientResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kWorker); !s.ok()) return s;
  v1::OuterGradientChunk message;
  uint64_t count = 0;
  bool task_complete = false;
  std::string last_lease;
  while (reader->Read(&message)) {
    if (count == 0) {
      const WorkerSession session = parse_session(message.session_id());
      if (Status current =
              coordinator_.check_current_instance(session.worker_id, session.instance_id);
          !current.is_ok())
        return to_grpc(current);
    }
    grpc::Status status = push_one(message, &task_complete);
    if (!status.ok()) return status;
    last_lease = message.lease_id();
    ++count;
  }
  if (context->IsCancelled())
    return bad(grpc::StatusCode::CANCELLED, "the push stream was cancelled after " +
                                                std::to_string(count) +
                                                " chunks; those are kept, retry the rest");
  response->set_accepted(true);
  response->set_chunks_received(count);
  response->set_task_complete(task_complete);
  if (!task_complete && !last_lease.empty()) {
    auto lease_id = parse_id(last_lease, "lease id");
    auto lease = lease_id.is_ok() ? coordinator_.lease_summary(*lease_id)
                                  : Result<std::optional<LeaseSummary>>(lease_id.status());
    if (lease.is_ok() && *lease && (*lease)->state == "completed") {
      // Completed before this push (a retried push, a worker with the same id): nothing is missing.
      response->set_reason("lease " + last_lease +
                           " is already complete; its gradient was accepted before this push");
    } else if (lease.is_ok() && *lease) {
      std::string missing;
      for (uint32_t module : (*lease)->module_ids) {
        auto stored = coordinator_.stored_chunks(*lease_id, module);
        if (!stored.is_ok()) continue;
        uint64_t have = 0, total = 0;
        for (const StoredChunk& c : *stored) {
          have += c.size_bytes;
          total = c.total_bytes;
        }
        if (total == 0 || have < total)
          missing += (missing.empty() ? "" : ", ") + std::string("module ") +
                     std::to_string(module) + " (" + std::to_string(have) + " of " +
                     (total == 0 ? std::string("?") : std::to_string(total)) + " bytes)";
      }
      if (missing.empty()) {
        response->set_reason("lease " + last_lease + " is " + (*lease)->state +
                             ", not live: its chunks are all held but it was not completed");
      } else {
        response->set_reason("lease " + last_lease + " is not complete: missing " + missing +
                             "; push the rest to complete it");
      }
    }
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ReportMetrics(grpc::ServerContext* context,
                                               const v1::ReportMetricsRequest* request,
                                               v1::ReportMetricsResponse* /*response*/) {
  if (auto s = authorize(*context, *tokens(), Role::kWorker); !s.ok()) return s;
  std::vector<MetricPoint> points;
  for (const v1::MetricPoint& p : request->points()) {
    auto run = parse_id(p.run_id(), "run id");
    if (!run.is_ok()) return to_grpc(run.status());
    MetricPoint point;
    point.run_id = *run;
    point.path_id = p.path_id();
    point.outer_step = p.outer_step();
    point.inner_step = p.inner_step();
    point.name = p.name();
    point.value = p.value();
    point.time_ms = static_cast<int64_t>(p.unix_ms());
    points.push_back(std::move(point));
  }
  return to_grpc(coordinator_.report_metrics(points));
}

grpc::Status CoordinatorService::PushProgress(grpc::ServerContext* context,
                                              const v1::PushProgressRequest* request,
                                              v1::PushProgressResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kWorker); !s.ok()) return s;
  auto lease_id = parse_id(request->lease_id(), "lease id");
  if (!lease_id.is_ok()) return to_grpc(lease_id.status());
  auto lease = coordinator_.lease_summary(*lease_id);
  if (!lease.is_ok()) return to_grpc(lease.status());
  if (!*lease)
    return bad(grpc::StatusCode::FAILED_PRECONDITION,
               "lease " + request->lease_id() + " is unknown; drop its task");
  const WorkerSession session = parse_session(request->session_id());
  if (!session.worker_id.empty() && session.worker_id != (*lease)->worker_id)
    return bad(grpc::StatusCode::FAILED_PRECONDITION,
               "lease " + request->lease_id() + " belongs to worker " + (*lease)->worker_id);
  if (Status current = coordinator_.check_current_instance(session.worker_id, session.instance_id);
      !current.is_ok())
    return to_grpc(current);
  std::vector<uint64_t> held;
  for (uint32_t module : (*lease)->module_ids) {
    auto stored = coordinator_.stored_chunks(*lease_id, module);
    if (!stored.is_ok()) return to_grpc(stored.status());
    for (const StoredChunk& c : *stored) held.push_back(c.sequence);
  }
  std::sort(held.begin(), held.end());
  for (uint64_t sequence : held) response->add_sequences_held(sequence);
  response->set_task_complete((*lease)->state == "completed");
  response->set_lease_state((*lease)->state);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::ReleaseLease(grpc::ServerContext* context,
                                              const v1::ReleaseLeaseRequest* request,
                                              v1::ReleaseLeaseResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kWorker); !s.ok()) return s;
  auto lease_id = parse_id(request->lease_id(), "lease id");
  if (!lease_id.is_ok()) return to_grpc(lease_id.status());
  const WorkerSession session = parse_session(request->session_id());
  auto reply = coordinator_.release_lease(*lease_id, session.worker_id,
                                          request->reason().substr(0, 200), session.instance_id);
  if (!reply.is_ok()) return to_grpc(reply.status());
  response->set_released(reply->changed);
  response->set_reason(reply->message);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Unregister(grpc::ServerContext* context,
                                            const v1::UnregisterRequest* request,
                                            v1::UnregisterResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kWorker); !s.ok()) return s;
  const WorkerSession session = parse_session(request->session_id());
  auto cleared = coordinator_.unregister_worker(session.worker_id, request->instance_id());
  if (!cleared.is_ok()) return to_grpc(cleared.status());
  response->set_unregistered(*cleared);
  return grpc::Status::OK;
}

// ---- operators ------------------------------------------------------------------------------

grpc::Status CoordinatorService::CreateRun(grpc::ServerContext* context,
                                           const v1::CreateRunRequest* request,
                                           v1::CreateRunResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kOperator); !s.ok()) return s;
  if (!options_.hooks.plan_run)
    return bad(grpc::StatusCode::UNIMPLEMENTED, "this coordinator cannot plan runs from a grid");
  auto spec = options_.hooks.plan_run(request->grid_toml());
  if (!spec.is_ok()) return to_grpc(spec.status());
  if (!request->request_id().empty()) spec->request_id = request->request_id();
  auto run = coordinator_.create_run(*spec);
  if (!run.is_ok()) return to_grpc(run.status());
  response->set_run_id(std::to_string(*run));
  return grpc::Status::OK;
}

namespace {
grpc::Status operator_reply(const Result<OperatorReply>& reply, v1::OperatorResponse* response) {
  if (!reply.is_ok()) return to_grpc(reply.status());
  response->set_changed(reply->changed);
  response->set_message(reply->message);
  return grpc::Status::OK;
}
}  // namespace

grpc::Status CoordinatorService::Pause(grpc::ServerContext* context, const v1::RunRequest* request,
                                       v1::OperatorResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kOperator); !s.ok()) return s;
  auto run = parse_id(request->run_id(), "run id");
  if (!run.is_ok()) return to_grpc(run.status());
  return operator_reply(coordinator_.pause(*run), response);
}

grpc::Status CoordinatorService::Resume(grpc::ServerContext* context, const v1::RunRequest* request,
                                        v1::OperatorResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kOperator); !s.ok()) return s;
  auto run = parse_id(request->run_id(), "run id");
  if (!run.is_ok()) return to_grpc(run.status());
  return operator_reply(coordinator_.resume(*run), response);
}

grpc::Status CoordinatorService::DrainWorker(grpc::ServerContext* context,
                                             const v1::DrainWorkerRequest* request,
                                             v1::OperatorResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kOperator); !s.ok()) return s;
  return operator_reply(coordinator_.drain(request->worker_id()), response);
}

grpc::Status CoordinatorService::UndrainWorker(grpc::ServerContext* context,
                                               const v1::DrainWorkerRequest* request,
                                               v1::OperatorResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kOperator); !s.ok()) return s;
  return operator_reply(coordinator_.undrain(request->worker_id()), response);
}

grpc::Status CoordinatorService::ListWorkers(grpc::ServerContext* context,
                                             const v1::ListWorkersRequest* /*request*/,
                                             v1::ListWorkersResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kOperator); !s.ok()) return s;
  auto workers = coordinator_.workers();
  if (!workers.is_ok()) return to_grpc(workers.status());
  for (const WorkerStatus& worker : *workers) {
    v1::WorkerSummary* out = response->add_workers();
    out->set_worker_id(worker.worker_id);
    out->set_host(worker.host);
    out->set_devices(worker.devices);
    out->set_version(worker.version);
    out->set_state(worker.state);
    out->set_last_heard_unix_ms(
        static_cast<uint64_t>(std::max<int64_t>(0, worker.last_heartbeat_ms)));
    if (worker.live_lease_id != 0) out->set_live_lease_id(std::to_string(worker.live_lease_id));
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::PreemptTask(grpc::ServerContext* context,
                                             const v1::PreemptTaskRequest* request,
                                             v1::OperatorResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kOperator); !s.ok()) return s;
  auto lease = parse_id(request->lease_id(), "lease id");
  if (!lease.is_ok()) return to_grpc(lease.status());
  return operator_reply(coordinator_.preempt(*lease), response);
}

grpc::Status CoordinatorService::SetInnerSteps(grpc::ServerContext* context,
                                               const v1::SetInnerStepsRequest* request,
                                               v1::OperatorResponse* response) {
  if (auto s = authorize(*context, *tokens(), Role::kOperator); !s.ok()) return s;
  auto run = parse_id(request->run_id(), "run id");
  if (!run.is_ok()) return to_grpc(run.status());
  return operator_reply(coordinator_.set_inner_steps(*run, request->inner_steps()), response);
}

grpc::Status CoordinatorService::WatchRun(grpc::ServerContext* context,
                                          const v1::RunRequest* request,
                                          grpc::ServerWriter<v1::RunEvent>* writer) {
  if (auto s = authorize(*context, *tokens(), Role::kOperator); !s.ok()) return s;
  auto run = parse_id(request->run_id(), "run id");
  if (!run.is_ok()) return to_grpc(run.status());
  auto exists = coordinator_.run_config(*run);
  if (!exists.is_ok()) return to_grpc(exists.status());
  // Two cursors: the events table (leases, aggregations, operator actions) and the metrics table
  // (training and validation loss, throughput), each streamed in its own row order.
  int64_t after_event = 0, after_metric = 0;
  while (!context->IsCancelled() && !stopping_) {
    auto events = coordinator_.events(*run, after_event);
    if (!events.is_ok()) return to_grpc(events.status());
    auto metrics = coordinator_.metrics(*run, after_metric);
    if (!metrics.is_ok()) return to_grpc(metrics.status());
    for (const std::vector<RunEvent>* batch : {&*events, &*metrics}) {
      for (const RunEvent& event : *batch) {
        (event.kind == EventKind::kMetric ? after_metric : after_event) = event.id;
        v1::RunEvent out;
        if (!to_proto_event(event, &out)) continue;
        if (!writer->Write(out)) return grpc::Status::OK;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.watch_poll_ms));
  }
  return grpc::Status::OK;
}

}  // namespace dipaco
