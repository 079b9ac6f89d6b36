#include "worker_client.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <thread>

#include "compress/codec.h"
#include "retry_backoff.h"
#include "rpc/auth.h"
#include "rpc/wire.h"
#include "run/module_delta.h"
#include "run/module_files.h"
#include "run_cache_files.h"
#include "util/log.h"
#include "util/sha256.h"

namespace dipaco {
namespace {

namespace fs = std::filesystem;

bool retryable(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::INTERNAL: return true;
    default: return false;
  }
}

// The coordinator does not take this worker's token (rotated on one side before the other):
// retried after a long wait, never the end of the worker.
bool token_refused(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
         s.error_code() == grpc::StatusCode::PERMISSION_DENIED;
}

std::string describe(const grpc::Status& s) {
  return std::to_string(static_cast<int>(s.error_code())) + " " + s.error_message();
}

std::string seconds_text(int64_t ms) {
  std::string text = std::to_string(ms / 1000);
  if (ms % 1000 != 0) {
    std::string fraction = std::to_string(1000 + ms % 1000).substr(1);
    while (fraction.back() == '0') fraction.pop_back();
    text += "." + fraction;
  }
  return text + " s";
}

// A push gives up after this many attempts in a row that moved nothing while the coordinator
// answered (it keeps failing to store, or says the chunks are held but the task is not
// complete), and a stopping worker whose lease deadline is unknown after this many tries.
constexpr uint64_t kPushAttemptsWithoutProgress = 20;

// How a leased task ended, for the lease loop: a failed one backs off before the next lease.
struct TaskOutcome {
  bool completed = false;  // pushed whole
  bool failed = false;     // the runner or the inputs failed, or the runner stalled
  std::string failure;     // why, when failed
};

}  // namespace

struct WorkerClient::Impl {
  WorkerClientOptions options;
  TaskRunner& runner;
  WorkerStats& stats;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Coordinator::Stub> stub;
  std::string session;
  uint32_t heartbeat_ms = 5000;
  std::mt19937_64 random{std::random_device{}()};
  RetryBackoff call_backoff;  // failed calls to the coordinator
  RetryBackoff task_backoff;  // failed tasks (runner, inputs, stall)
  RetryBackoff auth_backoff;  // calls refused for their token
  std::mutex token_mutex;
  std::string token;  // under token_mutex: replaced when the token file is read again
  bool download_token_refused = false;  // set by download(), read by execute()
  uint64_t failures_in_a_row = 0;       // tasks, since the last completed one
  std::set<std::string> verified;       // cached files whose hash was checked in this process
  // Run configs this worker holds (run id -> sha256 hex, text), sent by the coordinator once
  // per run; leases name them by hash instead of repeating them. The last few runs only.
  std::map<std::string, std::pair<std::string, std::string>> run_configs;
  static constexpr size_t kHeldRunConfigs = 8;
  // Runs with files in the cache (run_cache_files.h), named in a LeaseTask every
  // cached_runs_ask_interval_ms; the reply's ended_run_ids says which of them the coordinator
  // will never lease again.
  std::set<std::string> cached_runs;
  static constexpr size_t kMaxCachedRunsAsked = 1000;  // per call; the rest on later calls
  std::string last_cached_run_asked;                   // where the next call goes on
  std::optional<std::chrono::steady_clock::time_point> cached_runs_asked_at;
  const std::atomic<int>* stop = nullptr;
  std::atomic<bool> drained{false};  // set by the heartbeat thread
  // Set by the heartbeat thread: a newer process registered with this worker id; the task is
  // dropped and this process registers again (refused while the newer one is present).
  std::atomic<bool> replaced{false};
  // ALREADY_EXISTS refusals are logged as ERROR at most this often, INFO in between.
  std::optional<std::chrono::steady_clock::time_point> refusal_error_logged_at;
  // Registered while drained by the operator: idle (no leases, no exit) until undrained.
  bool idle_while_drained = false;

  Impl(WorkerClientOptions o, TaskRunner& r, WorkerStats& s)
      : options(std::move(o)),
        runner(r),
        stats(s),
        call_backoff(options.backoff_initial_ms, options.backoff_max_ms),
        task_backoff(options.backoff_initial_ms, options.backoff_max_ms),
        auth_backoff(options.auth_backoff_initial_ms, options.auth_backoff_max_ms),
        token(options.token) {}

  std::string current_token() {
    std::lock_guard lock(token_mutex);
    return token;
  }

  void prepare(grpc::ClientContext& context) {
    add_bearer_token(context, current_token());
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds(options.rpc_timeout_ms));
  }

  // Sleeps up to ms, waking early when stop is set. Returns false when stopping.
  bool sleep_ms(int64_t ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until) {
      if (stop->load() != 0) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(ms, 20)));
    }
    return stop->load() == 0;
  }

  // Sleeps up to ms, waking early only for a hard stop (2): a graceful stop (1) still lets the
  // running task finish its push, and its retries must keep their backoff.
  void sleep_unless_hard_stop(int64_t ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < until && stop->load() < 2)
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(ms, 20)));
  }

  // After a failed call: exponential backoff with jitter (retry_backoff.h).
  // A blip is INFO; from the third failure in a row (a coordinator that stays away, a wrong
  // address, TLS that does not match) it is a WARNING with the count, so that a permanent
  // misconfiguration stands out in the journal.
  void back_off(const std::string& why) {
    int64_t wait = call_backoff.next_wait_ms(random);
    const int64_t failures = call_backoff.failures();
    if (failures >= 3) {
      DIPACO_LOG(kWarning) << "worker " << options.worker_id << ": " << why << " (" << failures
                           << " failures in a row); retrying in " << wait << " ms";
    } else {
      DIPACO_LOG(kInfo) << "worker " << options.worker_id << ": " << why << "; retrying in " << wait
                        << " ms";
    }
    sleep_ms(wait);
  }

  // After a refused token: reads the token file again (options.reread_token) and says what
  // came of it, for the ERROR line.
  std::string reread_token() {
    if (!options.reread_token) return "no token file to read again";
    auto fresh = options.reread_token();
    if (!fresh.is_ok())
      return "cannot read the token again, keeping it: " + fresh.status().message();
    std::lock_guard lock(token_mutex);
    if (*fresh == token) return "the token file still holds the same token";
    token = std::move(fresh).value();
    return "the token file holds a new token, using it";
  }

  std::string refused_line(const std::string& what, const grpc::Status& s) {
    return "worker " + options.worker_id + ": the coordinator refused this worker's token (" +
           what + ": " + describe(s) + "); " + reread_token();
  }

  // A register or lease call refused for its token: ERROR, the token read again, a long wait
  // (auth_backoff) that a stop cuts short.
  void wait_after_token_refused(const std::string& what, const grpc::Status& s) {
    const int64_t wait = auth_backoff.next_wait_ms(random);
    DIPACO_LOG(kError) << refused_line(what, s) << "; retrying in " << wait << " ms ("
                       << auth_backoff.failures() << " refusals in a row)";
    sleep_ms(wait);
  }

  const std::string& instance_id() const {
    return options.instance_id.empty() ? process_instance_id() : options.instance_id;
  }

  grpc::Status register_worker() {
    v1::RegisterRequest request;
    request.set_worker_id(options.worker_id);
    request.set_host(options.host);
    request.set_version(options.version);
    request.set_instance_id(instance_id());
    const std::vector<WorkerDevice> devices =
        options.devices.empty() ? std::vector<WorkerDevice>{WorkerDevice{"cpu", false, 0, ""}}
                                : options.devices;
    for (const WorkerDevice& device : devices) {
      v1::Device* sent = request.add_devices();
      sent->set_name(device.name);
      sent->set_backend(device.cuda ? v1::BACKEND_CUDA : v1::BACKEND_CPU);
      sent->set_memory_bytes(device.memory_bytes);
      sent->set_compute_capability(device.compute_capability);
    }
    v1::RegisterResponse response;
    grpc::ClientContext context;
    prepare(context);
    grpc::Status s = stub->Register(&context, request, &response);
    if (s.ok()) {
      session = response.session_id();
      heartbeat_ms = std::max<uint32_t>(10, response.heartbeat_interval_ms());
      DIPACO_LOG(kInfo) << "worker " << options.worker_id << ": registered, heartbeat every "
                        << heartbeat_ms << " ms";
      idle_while_drained = response.drain();
      if (idle_while_drained) {
        DIPACO_LOG(kWarning) << "worker " << options.worker_id
                             << ": drained by the operator; waiting for undrain (dipaco ctl "
                                "undrain "
                             << options.worker_id << ")";
      }
    }
    return s;
  }

  // Downloads (module or shard) into `path` with resume and hash check. `expected` (raw) empty =
  // trust the hash the chunks carry.
  Status download(const std::string& path, const std::string& expected,
                  const std::function<std::unique_ptr<grpc::ClientReader<v1::Chunk>>(
                      grpc::ClientContext&, uint64_t offset)>& open) {
    if (fs::exists(path)) {
      if (verified.count(path) != 0) return Status::ok();
      if (!expected.empty()) {
        auto digest = sha256_file(path);
        if (digest.is_ok() && *digest == expected) {
          verified.insert(path);
          return Status::ok();
        }
      }
      if (expected.empty()) {
        verified.insert(path);  // shards: the hash was checked before the rename
        return Status::ok();
      }
      fs::remove(path);
    }
    std::string part = path + ".part";
    for (int attempt = 0; attempt < 8; ++attempt) {
      if (stop->load() >= 2) return unavailable("stopping");
      std::error_code ec;
      uint64_t offset = fs::exists(part) ? fs::file_size(part, ec) : 0;
      FILE* out = std::fopen(part.c_str(), offset > 0 ? "ab" : "wb");
      if (out == nullptr) return io_error(part + ": cannot write (check cache_dir)");
      grpc::ClientContext context;
      prepare(context);
      auto reader = open(context, offset);
      v1::Chunk chunk;
      uint64_t total = 0;
      std::string claimed;
      bool ok = true;
      while (reader->Read(&chunk)) {
        if (chunk.offset_bytes() != offset) {
          ok = false;
          break;
        }
        total = chunk.total_bytes();
        claimed = chunk.total_sha256();
        if (!chunk.data().empty() &&
            std::fwrite(chunk.data().data(), 1, chunk.data().size(), out) != chunk.data().size())
          ok = false;
        offset += chunk.data().size();
        stats.bytes_down += chunk.data().size();
      }
      std::fclose(out);
      grpc::Status s = reader->Finish();
      if (token_refused(s)) {
        // Its heartbeats are refused as well: the task is dropped, the lease loop waits.
        DIPACO_LOG(kError) << refused_line("download of " + path, s) << "; dropping the task";
        download_token_refused = true;
        return unavailable("download refused: " + describe(s));
      }
      if (!s.ok() || !ok) {
        if (s.error_code() == grpc::StatusCode::OUT_OF_RANGE || !ok) fs::remove(part, ec);
        if (!s.ok() && !retryable(s) && s.error_code() != grpc::StatusCode::OUT_OF_RANGE)
          return not_found("download of " + path + " failed: " + describe(s));
        back_off("download of " + path + " broke at byte " + std::to_string(offset) + ": " +
                 describe(s));
        continue;
      }
      if (offset != total) continue;  // stream ended early without an error: resume
      auto digest = sha256_file(part);
      if (!digest.is_ok()) return digest.status();
      if (*digest != claimed || (!expected.empty() && *digest != expected)) {
        DIPACO_LOG(kWarning) << path << ": downloaded bytes hash to " << to_hex(*digest)
                             << ", expected " << to_hex(expected.empty() ? claimed : expected)
                             << "; downloading again";
        fs::remove(part, ec);
        continue;
      }
      fs::rename(part, path, ec);
      if (ec) return io_error(path + ": " + ec.message());
      verified.insert(path);
      call_backoff.reset();
      return Status::ok();
    }
    return data_loss("could not download " + path + " intact after 8 attempts");
  }

  std::string module_file(const std::string& run_id, uint32_t module_id, uint64_t version,
                          const char* kind = ".v-") const {
    return (fs::path(options.cache_dir) / "modules" /
            ("run-" + run_id + ".module-" + std::to_string(module_id) + kind +
             std::to_string(version)))
        .string();
  }

  // Builds version ref.version in the cache from an older cached version through the deltas in
  // between (module_delta.h), each checked: the base's file hash, the rebuilt values' hash, and
  // the rebuilt file's hash against the one the coordinator recorded. Any failure (no delta on
  // the coordinator, a garbled one) is returned; the caller fetches the whole version.
  Status fetch_by_deltas(const v1::Task& task, const v1::ModuleRef& ref, WireDtype dtype) {
    const uint64_t n = ref.num_params();
    const uint64_t max_chain = max_delta_chain(dtype, n);
    uint64_t held = 0;
    bool found = false;
    for (uint64_t back = 1; back <= max_chain && back <= ref.version(); ++back) {
      if (fs::exists(module_file(task.run_id(), ref.module_id(), ref.version() - back))) {
        held = ref.version() - back;
        found = true;
        break;
      }
    }
    if (!found) return not_found("no earlier version of the module in the cache");
    const std::string held_file = module_file(task.run_id(), ref.module_id(), held);
    DIPACO_ASSIGN_OR_RETURN(std::string held_sha, sha256_file_hex(held_file));
    DIPACO_ASSIGN_OR_RETURN(std::vector<float> current,
                            read_module_version(held_file, ref.module_id(), n));
    for (uint64_t v = held + 1; v <= ref.version(); ++v) {
      const std::string delta_file = module_file(task.run_id(), ref.module_id(), v, ".delta-v-");
      DIPACO_RETURN_IF_ERROR(
          download(delta_file, "", [&](grpc::ClientContext& context, uint64_t offset) {
            v1::FetchModuleRequest request;
            request.set_session_id(session);
            request.set_run_id(task.run_id());
            request.set_module_id(ref.module_id());
            request.set_version(v);
            request.set_offset_bytes(offset);
            request.set_as_delta(true);
            return stub->FetchModule(&context, request);
          }));
      auto delta = read_module_delta(delta_file, ref.module_id(), v, n);
      std::error_code ec;
      fs::remove(delta_file, ec);
      verified.erase(delta_file);
      if (!delta.is_ok()) return delta.status();
      if (delta->base_sha256 != held_sha)
        return data_loss("the delta to version " + std::to_string(v) +
                         " starts from another version than the cached one");
      DIPACO_ASSIGN_OR_RETURN(current, rebuild_module_version(*delta, current));
      const std::string file = module_file(task.run_id(), ref.module_id(), v);
      DIPACO_ASSIGN_OR_RETURN(held_sha, write_module_version(file, ref.module_id(), v, current));
      const std::string recorded = v == ref.version() ? to_hex(ref.sha256()) : delta->target_sha256;
      if (held_sha != recorded || held_sha != delta->target_sha256) {
        fs::remove(file, ec);
        return data_loss("module " + std::to_string(ref.module_id()) + " version " +
                         std::to_string(v) + " rebuilt from its delta hashes to " + held_sha +
                         ", the coordinator recorded " + recorded);
      }
      verified.insert(file);
      DIPACO_LOG(kInfo) << "module " << ref.module_id() << " version " << v
                        << " rebuilt from a delta of " << delta->payload.size() << " bytes";
    }
    return Status::ok();
  }

  Status fetch_inputs(const v1::Task& task, TaskAssignment* assignment) {
    DIPACO_RETURN_IF_ERROR(claim_cached_run(task.run_id(), task.run_config_sha256().empty()
                                                               ? sha256_hex(assignment->run_config)
                                                               : task.run_config_sha256()));
    fs::create_directories(fs::path(options.cache_dir) / "modules");
    fs::create_directories(fs::path(options.cache_dir) / "shards");
    for (const v1::ModuleRef& ref : task.modules()) {
      // The module's own downlink dtype (fp32 for a path-specific one), else the task's.
      auto delta_dtype = from_proto_dtype(ref.module_delta_dtype() != v1::DTYPE_UNSPECIFIED
                                              ? ref.module_delta_dtype()
                                              : task.module_delta_dtype());
      const bool deltas = delta_dtype.is_ok() && *delta_dtype != WireDtype::kFp32;
      std::string file = module_file(task.run_id(), ref.module_id(), ref.version());
      if (deltas && ref.version() > 0 && !fs::exists(file)) {
        if (Status s = fetch_by_deltas(task, ref, *delta_dtype); !s) {
          if (s.code() != StatusCode::kNotFound || stop->load() >= 2) {
            DIPACO_LOG(kWarning) << "delta download refused: " << s.message()
                                 << "; fetching the whole version";
          }
        }
      }
      DIPACO_RETURN_IF_ERROR(
          download(file, ref.sha256(), [&](grpc::ClientContext& context, uint64_t offset) {
            v1::FetchModuleRequest request;
            request.set_session_id(session);
            request.set_run_id(task.run_id());
            request.set_module_id(ref.module_id());
            request.set_version(ref.version());
            request.set_offset_bytes(offset);
            return stub->FetchModule(&context, request);
          }));
      WireDtype gradient_dtype = assignment->gradient_dtype;
      if (ref.gradient_dtype() != v1::DTYPE_UNSPECIFIED) {
        DIPACO_ASSIGN_OR_RETURN(gradient_dtype, from_proto_dtype(ref.gradient_dtype()));
      }
      assignment->modules.push_back({ref.module_id(), ref.version(), ref.num_params(),
                                     ref.param_offset(), file, gradient_dtype, ref.push_params()});
    }
    std::string shard = (fs::path(options.cache_dir) / "shards" /
                         ("run-" + task.run_id() + ".shard-" + std::to_string(task.shard_id())))
                            .string();
    DIPACO_RETURN_IF_ERROR(download(shard, "", [&](grpc::ClientContext& context, uint64_t offset) {
      v1::FetchShardRequest request;
      request.set_session_id(session);
      request.set_run_id(task.run_id());
      request.set_shard_id(task.shard_id());
      request.set_offset_bytes(offset);
      return stub->FetchShard(&context, request);
    }));
    assignment->shard_file = shard;
    return Status::ok();
  }

  // The sequences of the lease's push the coordinator already holds (PushProgress). Sets
  // *complete when the lease already completed. An older coordinator without PushProgress
  // (UNIMPLEMENTED) holds nothing as far as we know: everything is sent again.
  grpc::Status held_sequences(const std::string& lease_id, std::set<uint64_t>* held,
                              bool* complete) {
    v1::PushProgressRequest request;
    request.set_session_id(session);
    request.set_lease_id(lease_id);
    v1::PushProgressResponse response;
    grpc::ClientContext context;
    prepare(context);
    grpc::Status s = stub->PushProgress(&context, request, &response);
    held->clear();
    *complete = false;
    if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) return grpc::Status::OK;
    if (!s.ok()) return s;
    held->insert(response.sequences_held().begin(), response.sequences_held().end());
    *complete = response.task_complete();
    return s;
  }

  // Pushes every module; true when the task completed. A broken stream is retried with backoff,
  // sending only the chunks the coordinator does not hold yet:
  //   - while the coordinator cannot be reached (UNAVAILABLE), for as long as it takes: a
  //     restarted coordinator gives the leases in flight a new lease timeout, and says whether
  //     this one is still live; a stopping worker waits only until the lease's deadline as last
  //     heard (`lease_deadline_unix_ms`, moved on by heartbeats), or kPushAttemptsWithoutProgress
  //     tries when none is known;
  //   - while it answers but the push does not get on (store errors, deadlines without a new
  //     chunk held), kPushAttemptsWithoutProgress attempts in a row.
  // A hard stop ends it after the chunk being written. Each stream's deadline grows with the
  // bytes it carries (rpc_timeout_ms + bytes / push_min_bytes_per_second).
  Result<bool> push(const TaskAssignment& task, const TaskResult& result,
                    const std::atomic<uint64_t>& lease_deadline_unix_ms,
                    const std::atomic<bool>& lease_lost) {
    struct Encoded {
      uint32_t module_id;
      uint64_t num_params;
      WireDtype dtype;
      bool params;
      std::string bytes;
      std::string digest;
    };
    std::vector<Encoded> modules;
    for (const TaskAssignment::Module& module : task.modules) {
      auto found =
          std::find_if(result.gradients.begin(), result.gradients.end(),
                       [&](const ModuleGradient& g) { return g.module_id == module.module_id; });
      if (found == result.gradients.end())
        return internal_error("the task runner returned no gradient for module " +
                              std::to_string(module.module_id));
      Encoded e{module.module_id,   module.num_params, module.gradient_dtype,
                module.push_params, found->encoded,    {}};
      if (e.bytes.empty()) {
        if (found->values.size() != module.num_params)
          return internal_error("module " + std::to_string(module.module_id) + ": runner gave " +
                                std::to_string(found->values.size()) + " values for " +
                                std::to_string(module.num_params) + " params");
        std::vector<uint8_t> out;
        DIPACO_RETURN_IF_ERROR(encode_into(module.gradient_dtype, found->values, &out));
        e.bytes.assign(reinterpret_cast<const char*>(out.data()), out.size());
      }
      e.digest = sha256(e.bytes);
      modules.push_back(std::move(e));
    }
    // Chunks are numbered 0, 1, 2, ... across the modules, the same on every attempt.
    struct Piece {
      const Encoded* module;
      uint64_t sequence;
      uint64_t offset;
      uint64_t size;
    };
    std::vector<Piece> pieces;
    for (const Encoded& module : modules) {
      for (uint64_t offset = 0; offset < module.bytes.size(); offset += options.push_chunk_bytes)
        pieces.push_back(
            {&module, pieces.size(), offset,
             std::min<uint64_t>(options.push_chunk_bytes, module.bytes.size() - offset)});
    }
    const uint64_t min_rate = std::max<uint64_t>(1, options.push_min_bytes_per_second);
    std::set<uint64_t> held;
    uint64_t attempts_without_progress = 0;
    size_t held_before = 0;
    for (uint64_t attempt = 1;; ++attempt) {
      if (stop->load() >= 2) return false;
      grpc::Status s;
      bool complete = false;
      if (attempt > 1) s = held_sequences(task.lease_id, &held, &complete);
      if (s.ok() && held.size() > held_before) {  // the last stream got some chunks in
        attempts_without_progress = 0;
        held_before = held.size();
      }
      if (s.ok() && complete) {  // the last attempt completed it; only its answer was lost
        call_backoff.reset();
        DIPACO_LOG(kInfo) << "lease " << task.lease_id
                          << ": the coordinator already holds the whole push";
        return true;
      }
      if (lease_lost) return false;  // a heartbeat said so and logged why
      uint64_t bytes = 0;
      for (const Piece& piece : pieces)
        if (held.count(piece.sequence) == 0) bytes += piece.size;
      if (s.ok() && attempt > 1 && bytes == 0) {
        // Every chunk is held but the task is not complete yet: the last stream's handler may
        // still be completing it. Ask again after the backoff rather than open an empty stream.
        s = grpc::Status(grpc::StatusCode::ABORTED,
                         "the coordinator holds every chunk but has not completed the task yet");
      } else if (s.ok()) {
        if (attempt > 1) {
          DIPACO_LOG(kInfo) << "lease " << task.lease_id << ": push attempt " << attempt
                            << ", the coordinator holds " << held.size() << " of " << pieces.size()
                            << " chunks; sending " << bytes << " bytes";
        }
        grpc::ClientContext context;
        add_bearer_token(context, current_token());
        context.set_deadline(
            std::chrono::system_clock::now() + std::chrono::milliseconds(options.rpc_timeout_ms) +
            std::chrono::milliseconds(static_cast<int64_t>(bytes * 1000 / min_rate)));
        v1::PushOuterGradientResponse response;
        auto writer = stub->PushOuterGradient(&context, &response);
        for (const Piece& piece : pieces) {
          if (held.count(piece.sequence) != 0) {
            ++stats.push_chunks_skipped;
            continue;
          }
          if (stop->load() >= 2) {  // a hard stop: the lease is handed back instead
            context.TryCancel();
            break;
          }
          v1::OuterGradientChunk chunk;
          chunk.set_session_id(session);
          chunk.set_lease_id(task.lease_id);
          chunk.set_sequence(piece.sequence);
          chunk.set_module_id(piece.module->module_id);
          chunk.set_dtype(to_proto_dtype(piece.module->dtype));
          chunk.set_params(piece.module->params);
          chunk.set_num_params(piece.module->num_params);
          v1::Chunk* c = chunk.mutable_chunk();
          c->set_offset_bytes(piece.offset);
          c->set_total_bytes(piece.module->bytes.size());
          c->set_total_sha256(piece.module->digest);
          c->set_data(piece.module->bytes.data() + piece.offset, piece.size);
          if (!writer->Write(chunk)) break;
          stats.bytes_up += piece.size;
          ++stats.push_chunks_sent;
        }
        writer->WritesDone();
        s = writer->Finish();
        if (s.ok()) {
          call_backoff.reset();
          if (!response.task_complete()) {
            DIPACO_LOG(kWarning) << "lease " << task.lease_id
                                 << ": push ended incomplete: " << response.reason();
          }
          return response.task_complete();
        }
      }
      const bool refused = token_refused(s);
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        DIPACO_LOG(kWarning) << "lease " << task.lease_id
                             << ": push refused, dropping the task: " << s.error_message();
        return false;
      }
      if (stop->load() >= 2) return false;
      if (!refused && !retryable(s)) return invalid_argument("push rejected: " + describe(s));
      const bool unreachable = s.error_code() == grpc::StatusCode::UNAVAILABLE;
      if (!unreachable && !refused) ++attempts_without_progress;
      if (attempts_without_progress >= kPushAttemptsWithoutProgress) {
        return unavailable(
            "push of lease " + task.lease_id + ": " + std::to_string(attempt) +
            " attempts, the last " + std::to_string(attempts_without_progress) +
            " without a new chunk held by the coordinator; last error: " + describe(s));
      }
      // A stopping worker does not wait for an unreachable coordinator beyond the lease, nor
      // does any worker for a token the coordinator refuses (the heartbeats are refused too).
      const int64_t deadline_ms = static_cast<int64_t>(lease_deadline_unix_ms.load());
      const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
      const bool stopping = stop->load() >= 1;
      const bool until_deadline = refused || (stopping && unreachable);
      if (until_deadline &&
          (deadline_ms > 0 ? now_ms >= deadline_ms : attempt >= kPushAttemptsWithoutProgress)) {
        return unavailable("push of lease " + task.lease_id + " failed " + std::to_string(attempt) +
                           " times " +
                           (refused ? "with this worker's token refused" : "while stopping") +
                           (deadline_ms > 0 ? ", until the lease's deadline" : "") +
                           "; last error: " + describe(s));
      }
      int64_t wait =
          refused ? auth_backoff.next_wait_ms(random) : call_backoff.next_wait_ms(random);
      if (until_deadline && deadline_ms > 0)
        wait = std::min(wait, std::max<int64_t>(1, deadline_ms - now_ms));
      if (refused) {
        DIPACO_LOG(kError) << refused_line("push of lease " + task.lease_id + ", attempt " +
                                               std::to_string(attempt),
                                           s)
                           << "; retrying in " << wait << " ms, until the lease's deadline";
        ++stats.push_retries;
        sleep_unless_hard_stop(wait);
        continue;
      }
      const std::string line = "worker " + options.worker_id + ": push of lease " + task.lease_id +
                               " broke (attempt " + std::to_string(attempt) + "): " + describe(s) +
                               "; retrying in " + std::to_string(wait) + " ms";
      if (attempt >= 3) {
        DIPACO_LOG(kWarning) << line;
      } else {
        DIPACO_LOG(kInfo) << line;
      }
      ++stats.push_retries;
      sleep_unless_hard_stop(wait);
    }
  }

  // After a completed task, drops the cached versions of its modules older than the ones it
  // used, and leftover deltas up to them. A later task needs a version at least as new (module
  // versions only move forward), and fetch_by_deltas builds it from the newest cached version
  // within max_delta_chain, so older files can never be used again; a straggler task at an
  // older version just downloads it whole. Assumes the cache dir is this worker's alone.
  void prune_module_cache(const TaskAssignment& task) {
    const std::string run_prefix = "run-" + task.run_id + ".module-";
    std::map<uint32_t, uint64_t> used;  // module id -> the version the task trained from
    for (const TaskAssignment::Module& module : task.modules)
      used[module.module_id] = module.version;
    std::vector<fs::path> stale;
    std::error_code ec;
    for (fs::directory_iterator it(fs::path(options.cache_dir) / "modules", ec), end;
         !ec && it != end; it.increment(ec)) {
      // run-R.module-M.v-V, run-R.module-M.delta-v-V, either with ".part"
      const std::string filename = it->path().filename().string();
      std::string_view name = filename;
      if (!name.starts_with(run_prefix)) continue;
      name.remove_prefix(run_prefix.size());
      uint32_t module_id = 0;
      auto parsed = std::from_chars(name.data(), name.data() + name.size(), module_id);
      if (parsed.ec != std::errc()) continue;
      name.remove_prefix(static_cast<size_t>(parsed.ptr - name.data()));
      const bool delta = name.starts_with(".delta-v-");
      if (!delta && !name.starts_with(".v-")) continue;
      name.remove_prefix(delta ? 9 : 3);
      uint64_t version = 0;
      parsed = std::from_chars(name.data(), name.data() + name.size(), version);
      if (parsed.ec != std::errc()) continue;
      name.remove_prefix(static_cast<size_t>(parsed.ptr - name.data()));
      if (!name.empty() && name != ".part") continue;
      auto kept = used.find(module_id);
      if (kept == used.end()) continue;
      if (delta ? version <= kept->second : version < kept->second) stale.push_back(it->path());
    }
    uint64_t bytes = 0;
    size_t removed = 0;
    for (const fs::path& file : stale) {
      std::error_code size_error, remove_error;
      const uint64_t size = fs::file_size(file, size_error);
      if (!fs::remove(file, remove_error)) continue;
      ++removed;
      if (!size_error) bytes += size;
      verified.erase(file.string());
    }
    if (removed > 0) {
      DIPACO_LOG(kInfo) << "worker " << options.worker_id << ": cache: removed " << removed
                        << " older module files (" << bytes << " bytes) of run " << task.run_id;
    }
  }

  // Names the cached runs in a LeaseTask request when cached_runs_ask_interval_ms has passed,
  // at most kMaxCachedRunsAsked of them, going round the set from one call to the next.
  void name_cached_runs(v1::LeaseTaskRequest& request) {
    const auto now = std::chrono::steady_clock::now();
    if (cached_runs.empty() || (cached_runs_asked_at &&
                                now - *cached_runs_asked_at <
                                    std::chrono::milliseconds(options.cached_runs_ask_interval_ms)))
      return;
    cached_runs_asked_at = now;
    if (cached_runs.size() <= kMaxCachedRunsAsked) {
      for (const std::string& run_id : cached_runs) request.add_cached_run_ids(run_id);
      return;
    }
    auto next = cached_runs.upper_bound(last_cached_run_asked);
    for (size_t named = 0; named < kMaxCachedRunsAsked; ++named) {
      if (next == cached_runs.end()) next = cached_runs.begin();
      request.add_cached_run_ids(*next);
      last_cached_run_asked = *next++;
    }
  }

  // Deletes the files of the runs the coordinator says are over (finished, or not its runs),
  // except `leased_run` (the run of the task in this reply). Runs the worker did not name, and
  // every run when the coordinator says nothing (one that predates ended_run_ids), are kept.
  // Run ids are one coordinator database's: when the cache holds files of this id under another
  // run config (the database was replaced), they are another run's shards and optimizer state
  // and go before this task reads any of them.
  Status claim_cached_run(const std::string& run_id, const std::string& config_sha256) {
    auto claimed = claim_run_files(options.cache_dir, run_id, config_sha256);
    if (!claimed.is_ok()) return claimed.status().with_context("cache");
    if (!claimed->replaced) return Status::ok();
    forget_verified_files(run_id);
    DIPACO_LOG(kWarning) << "worker " << options.worker_id << ": cache: run " << run_id
                         << " held files of another run config (" << claimed->previous_config_sha256
                         << ", now " << config_sha256
                         << "; the coordinator's database was replaced?); removed "
                         << claimed->removed.files << " files (" << claimed->removed.bytes
                         << " bytes)";
    return Status::ok();
  }

  void forget_verified_files(const std::string& run_id) {
    const std::string prefix = "run-" + run_id + ".";
    std::erase_if(verified, [&](const std::string& path) {
      return fs::path(path).filename().string().starts_with(prefix);
    });
  }

  void drop_ended_runs(const v1::LeaseTaskResponse& response, const std::string& leased_run) {
    for (const std::string& run_id : response.ended_run_ids()) {
      if (run_id == leased_run || cached_runs.erase(run_id) == 0) continue;
      run_configs.erase(run_id);
      const RemovedRunFiles removed = remove_run_files(options.cache_dir, run_id);
      forget_verified_files(run_id);
      DIPACO_LOG(kInfo)
          << "worker " << options.worker_id << ": cache: run " << run_id
          << " is finished or unknown to the coordinator, which will not lease it again; removed "
          << removed.files << " files (" << removed.bytes << " bytes)";
    }
  }

  void report(const TaskAssignment& task, const TaskResult& result) {
    if (result.metrics.empty()) return;
    v1::ReportMetricsRequest request;
    request.set_session_id(session);
    for (const TaskMetric& metric : result.metrics) {
      v1::MetricPoint* p = request.add_points();
      p->set_run_id(task.run_id);
      p->set_path_id(task.path_id);
      p->set_outer_step(task.outer_step);
      p->set_inner_step(metric.inner_step);
      p->set_name(metric.name);
      p->set_value(metric.value);
    }
    grpc::ClientContext context;
    prepare(context);
    v1::ReportMetricsResponse response;
    grpc::Status s = stub->ReportMetrics(&context, request, &response);
    if (!s.ok()) {
      DIPACO_LOG(kWarning) << "report metrics: " << describe(s);
    }
  }

  // After a clean end of run(): gives the worker id back so that the next process with it
  // registers at once. Best effort with a short deadline; an older coordinator's UNIMPLEMENTED
  // is ignored (the next process then waits until this one counts as gone).
  void unregister() {
    if (session.empty()) return;
    v1::UnregisterRequest request;
    request.set_session_id(session);
    request.set_instance_id(instance_id());
    v1::UnregisterResponse response;
    grpc::ClientContext context;
    add_bearer_token(context, current_token());
    context.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(std::min<int64_t>(2000, options.rpc_timeout_ms)));
    grpc::Status s = stub->Unregister(&context, request, &response);
    if (!s.ok() && s.error_code() != grpc::StatusCode::UNIMPLEMENTED) {
      DIPACO_LOG(kInfo) << "worker " << options.worker_id << ": could not give the worker id back ("
                        << describe(s)
                        << "); the next process with it waits until this one counts as gone";
    }
    session.clear();
  }

  // Hands the lease back; true when the coordinator took it.
  bool release(const std::string& lease_id, const std::string& why) {
    v1::ReleaseLeaseRequest request;
    request.set_session_id(session);
    request.set_lease_id(lease_id);
    request.set_reason(why);
    v1::ReleaseLeaseResponse response;
    grpc::ClientContext context;
    prepare(context);
    grpc::Status s = stub->ReleaseLease(&context, request, &response);
    DIPACO_LOG(kInfo) << "lease " << lease_id << " handed back (" << why
                      << "): " << (s.ok() ? response.reason() : describe(s));
    return s.ok();
  }

  // Runs one leased task end to end. Returns an error only for fatal conditions.
  Result<TaskOutcome> execute(const v1::Task& task) {
    TaskAssignment assignment;
    assignment.lease_id = task.lease_id();
    assignment.run_id = task.run_id();
    assignment.path_id = task.path_id();
    assignment.shard_id = task.shard_id();
    assignment.outer_step = task.outer_step();
    assignment.inner_steps = task.inner_steps();
    assignment.batch_size = task.batch_size();
    assignment.seq_len = task.seq_len();
    assignment.inner.lr = task.inner().lr();
    assignment.inner.beta1 = task.inner().beta1();
    assignment.inner.beta2 = task.inner().beta2();
    assignment.inner.eps = task.inner().eps();
    assignment.inner.weight_decay = task.inner().weight_decay();
    assignment.inner.grad_clip = task.inner().grad_clip();
    assignment.inner.warmup_steps = task.inner().warmup_steps();
    auto dtype = from_proto_dtype(task.gradient_dtype());
    if (!dtype.is_ok()) return dtype.status();
    assignment.gradient_dtype = *dtype;
    assignment.data_seed = task.data_seed();
    assignment.model_config_toml = task.model_config_toml();
    if (!task.run_config().empty() || task.run_config_sha256().empty()) {
      assignment.run_config = task.run_config();
      if (!task.run_config_sha256().empty()) {
        if (run_configs.size() >= kHeldRunConfigs && !run_configs.contains(task.run_id()))
          run_configs.erase(run_configs.begin());
        run_configs[task.run_id()] = {task.run_config_sha256(), task.run_config()};
      }
    } else {
      auto held = run_configs.find(task.run_id());
      if (held == run_configs.end() || held->second.first != task.run_config_sha256()) {
        release(task.lease_id(), "run config " + task.run_config_sha256() + " not held");
        run_configs.erase(task.run_id());
        return TaskOutcome{};
      }
      assignment.run_config = held->second.second;
    }
    assignment.deadline_unix_ms = static_cast<int64_t>(task.lease_deadline_unix_ms());
    cached_runs.insert(task.run_id());  // its modules, shard and state go into the cache
    DIPACO_LOG(kInfo) << "worker " << options.worker_id << ": lease " << task.lease_id() << " run "
                      << task.run_id() << " path " << task.path_id() << " shard " << task.shard_id()
                      << " outer step " << task.outer_step();

    // Heartbeats from the lease on: fetching can take a while too. They stop once the
    // watchdog has given the lease up.
    TaskProgress progress;
    std::atomic<bool> cancel{false};
    std::atomic<bool> lease_lost{false};
    std::atomic<bool> stalled{false};
    // The lease's deadline as the coordinator last said (the lease, then each heartbeat): how
    // long a push may keep retrying.
    std::atomic<uint64_t> lease_deadline_unix_ms{task.lease_deadline_unix_ms()};
    std::mutex mutex;
    std::condition_variable wake;
    bool done = false;
    std::thread heartbeat([&] {
      bool refused_before = false;  // the last heartbeat's token was refused too
      std::unique_lock lock(mutex);
      while (!done) {
        wake.wait_for(lock, std::chrono::milliseconds(heartbeat_ms), [&] { return done; });
        if (done) break;
        if (stalled) continue;
        lock.unlock();
        v1::HeartbeatRequest request;
        request.set_session_id(session);
        request.set_lease_id(task.lease_id());
        request.set_inner_step(progress.inner_step);
        request.set_tokens_per_second(progress.tokens_per_second);
        v1::HeartbeatResponse response;
        grpc::ClientContext context;
        prepare(context);
        grpc::Status s = stub->Heartbeat(&context, request, &response);
        if (token_refused(s)) {
          // One ERROR per run of refusals; the token is read again every time.
          std::string line = refused_line("heartbeat of lease " + task.lease_id(), s);
          if (!refused_before) {
            DIPACO_LOG(kError) << line
                               << "; the lease ends at its deadline unless a heartbeat "
                                  "gets through";
          }
        }
        refused_before = token_refused(s);
        if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION && !replaced) {
          DIPACO_LOG(kError) << "worker " << options.worker_id << ": lease " << task.lease_id()
                             << ": " << s.error_message();
          replaced = true;
          lease_lost = true;
          cancel = true;
        }
        if (s.ok() && response.lease_valid() && response.lease_deadline_unix_ms() > 0)
          lease_deadline_unix_ms = response.lease_deadline_unix_ms();
        if (s.ok() && !response.lease_valid() && !stalled) {
          DIPACO_LOG(kWarning) << "lease " << task.lease_id() << " lost: " << response.reason();
          lease_lost = true;
          cancel = true;
        }
        if (s.ok() && response.drain()) drained = true;
        if (stop->load() >= 2) cancel = true;
        lock.lock();
      }
    });
    auto finish = [&] {
      {
        std::lock_guard lock(mutex);
        done = true;
      }
      wake.notify_all();
      heartbeat.join();
    };

    download_token_refused = false;
    Status fetched = fetch_inputs(task, &assignment);
    if (!fetched.is_ok()) {
      finish();
      if (download_token_refused) {  // logged; not this worker's failure
        ++stats.tasks_lost;
        return TaskOutcome{};
      }
      const bool stopping = stop->load() >= 2;
      if (!lease_lost)
        release(task.lease_id(), stopping ? std::string("worker stopping")
                                          : "inputs unavailable: " + fetched.message());
      ++stats.tasks_lost;
      if (stopping || lease_lost) return TaskOutcome{};
      return TaskOutcome{false, true, "inputs unavailable: " + fetched.message()};
    }
    // A watcher cancels the runner when the worker is told to stop hard, and when the runner
    // makes no progress for stall_timeout_ms (then it also hands the lease back itself, as the
    // runner may never return).
    std::atomic<bool> runner_running{true};
    std::atomic<bool> handed_back{false};
    std::thread watcher([&] {
      const auto stall_timeout = std::chrono::milliseconds(options.stall_timeout_ms);
      auto last_progress = std::chrono::steady_clock::now();
      uint64_t seen_step = progress.inner_step, seen_activity = progress.activity;
      while (!cancel && stop->load() < 2) {
        {
          std::unique_lock lock(mutex);
          if (wake.wait_for(lock, std::chrono::milliseconds(20), [&] { return done; })) return;
        }
        if (options.stall_timeout_ms <= 0 || !runner_running) continue;
        const auto now = std::chrono::steady_clock::now();
        const uint64_t step = progress.inner_step, activity = progress.activity;
        if (step != seen_step || activity != seen_activity) {
          seen_step = step;
          seen_activity = activity;
          last_progress = now;
          continue;
        }
        if (now - last_progress < stall_timeout) continue;
        stalled = true;
        cancel = true;
        DIPACO_LOG(kError) << "worker " << options.worker_id << ": lease " << task.lease_id()
                           << ": the runner made no progress for "
                           << seconds_text(options.stall_timeout_ms)
                           << " (stall_timeout_s; at inner step " << step << " of "
                           << task.inner_steps() << "): cancelling it and handing the lease back";
        if (!lease_lost) {
          // Not handed back (coordinator unreachable): the caller tries again after the runner
          // returns, else the lease times out on the coordinator as the heartbeats stopped.
          handed_back = release(task.lease_id(), "stalled: no progress for " +
                                                     seconds_text(options.stall_timeout_ms) +
                                                     " at inner step " + std::to_string(step));
        }
        std::unique_lock lock(mutex);
        if (!wake.wait_for(lock, stall_timeout, [&] { return done; })) {
          DIPACO_LOG(kError) << "worker " << options.worker_id << ": the runner has not returned "
                             << seconds_text(options.stall_timeout_ms)
                             << " after it was cancelled; this worker holds no lease but cannot "
                                "train until it is restarted";
        }
        return;
      }
      cancel = true;
    });
    Result<TaskResult> result = runner.run(assignment, progress, cancel);
    runner_running = false;
    if (stop->load() >= 2 && !lease_lost) cancel = true;
    bool cancelled = cancel.load();
    if (!result.is_ok() || cancelled) {
      finish();
      watcher.join();
      if (!lease_lost && !handed_back)
        release(task.lease_id(), result.is_ok() ? "worker stopping" : result.status().message());
      ++stats.tasks_lost;
      if (stalled)
        return TaskOutcome{false, true,
                           "stalled: no progress for " + seconds_text(options.stall_timeout_ms)};
      if (cancelled) return TaskOutcome{};
      return TaskOutcome{false, true, result.status().message()};
    }
    auto pushed = push(assignment, *result, lease_deadline_unix_ms, lease_lost);
    finish();
    watcher.join();
    if (!pushed.is_ok()) {
      ++stats.tasks_lost;
      DIPACO_LOG(kWarning) << "lease " << task.lease_id() << ": " << pushed.status().message();
      return TaskOutcome{};
    }
    if (!*pushed && stop->load() >= 2 && !lease_lost) {
      release(task.lease_id(), "worker stopping");  // a hard stop during the push
    }
    if (*pushed) {
      ++stats.tasks_completed;
      report(assignment, *result);
      prune_module_cache(assignment);
      DIPACO_LOG(kInfo) << "worker " << options.worker_id << ": lease " << task.lease_id()
                        << " complete";
      return TaskOutcome{true, false, {}};
    }
    ++stats.tasks_lost;
    return TaskOutcome{};
  }

  // Before the next lease: a failed task waits (backing off while failures repeat), so that a
  // worker that cannot train does not lease and hand back tasks in a hot loop; a completed task
  // resets the wait.
  void after_task(const TaskOutcome& outcome) {
    if (outcome.completed) {
      task_backoff.reset();
      failures_in_a_row = 0;
    }
    if (!outcome.failed) return;
    ++stats.tasks_failed;
    ++failures_in_a_row;
    const int64_t wait = task_backoff.next_wait_ms(random);
    DIPACO_LOG(kWarning) << "worker " << options.worker_id << ": task failed (" << failures_in_a_row
                         << " in a row): " << outcome.failure << "; leasing again in " << wait
                         << " ms";
    sleep_ms(wait);
  }
};

const std::string& process_instance_id() {
  static const std::string id = [] {
    std::random_device device;
    std::string hex;
    char digits[9];
    for (int i = 0; i < 4; ++i) {
      std::snprintf(digits, sizeof(digits), "%08x", static_cast<unsigned>(device()));
      hex += digits;
    }
    return hex;
  }();
  return id;
}

WorkerClient::WorkerClient(WorkerClientOptions options, TaskRunner& runner)
    : impl_(std::make_unique<Impl>(std::move(options), runner, stats_)) {}

WorkerClient::~WorkerClient() = default;

Status WorkerClient::run(const std::atomic<int>& stop) {
  Impl& w = *impl_;
  w.stop = &stop;
  if (w.options.worker_id.empty()) return invalid_argument("worker id: empty");
  if (w.options.cache_dir.empty()) return invalid_argument("cache_dir: empty");
  std::error_code ec;
  fs::create_directories(w.options.cache_dir, ec);
  if (ec) return io_error(w.options.cache_dir + ": " + ec.message() + " (check cache_dir)");
  w.cached_runs = runs_in_cache(w.options.cache_dir);
  DIPACO_ASSIGN_OR_RETURN(w.channel, make_channel(w.options.channel));
  w.stub = v1::Coordinator::NewStub(w.channel);
  while (stop.load() == 0 && !w.drained) {
    if (w.options.max_tasks != 0 && stats_.tasks_completed >= w.options.max_tasks) break;
    if (w.session.empty()) {
      grpc::Status s = w.register_worker();
      if (token_refused(s)) {
        w.wait_after_token_refused("register", s);
        continue;
      }
      if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
        // Another process holds the id. A crashed predecessor stops being present within
        // seconds; a live one is a misconfiguration the operator must see.
        // A restart right after a clean exit sees this until the old process counts as gone:
        // an ERROR on the first refusal and every tenth, INFO in between.
        // ERROR at most once a minute, INFO in between.
        const int64_t wait = w.call_backoff.next_wait_ms(w.random);
        const int64_t refusals = w.call_backoff.failures();
        const std::string line =
            "the coordinator refused to register this process: " + s.error_message() +
            "; retrying in " + std::to_string(wait) + " ms (" + std::to_string(refusals) +
            " refusals in a row)";
        const auto now = std::chrono::steady_clock::now();
        if (!w.refusal_error_logged_at ||
            now - *w.refusal_error_logged_at >= std::chrono::minutes(1)) {
          w.refusal_error_logged_at = now;
          DIPACO_LOG(kError) << "worker " << w.options.worker_id << ": " << line;
        } else {
          DIPACO_LOG(kInfo) << "worker " << w.options.worker_id << ": " << line;
        }
        w.sleep_ms(wait);
        continue;
      }
      if (!s.ok()) {
        w.back_off("register: " + describe(s));
        continue;
      }
      w.call_backoff.reset();
      w.auth_backoff.reset();
    }
    v1::LeaseTaskRequest request;
    request.set_session_id(w.session);
    for (const auto& [run_id, held] : w.run_configs)
      (*request.mutable_run_config_sha256())[run_id] = held.first;
    w.name_cached_runs(request);
    v1::LeaseTaskResponse response;
    grpc::ClientContext context;
    w.prepare(context);
    grpc::Status s = w.stub->LeaseTask(&context, request, &response);
    if (token_refused(s)) {
      w.wait_after_token_refused("lease", s);
      continue;
    }
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
      w.session.clear();  // the coordinator lost our registration (new database)
      continue;
    }
    if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      // A newer process registered with this worker id: register again, which the coordinator
      // refuses while that one is present.
      DIPACO_LOG(kError) << "worker " << w.options.worker_id << ": " << s.error_message();
      w.session.clear();
      w.sleep_ms(w.call_backoff.next_wait_ms(w.random));
      continue;
    }
    if (!s.ok()) {
      w.back_off("lease: " + describe(s));
      continue;
    }
    w.call_backoff.reset();
    w.auth_backoff.reset();
    w.drop_ended_runs(response, response.has_task() ? response.task().run_id() : "");
    if (!response.drain() && w.idle_while_drained) {
      DIPACO_LOG(kInfo) << "worker " << w.options.worker_id
                        << ": undrained by the operator; taking tasks again";
      w.idle_while_drained = false;
    }
    if (response.has_task()) {
      if (w.options.on_lease) w.options.on_lease(response.task().lease_id());
      Result<TaskOutcome> outcome = w.execute(response.task());
      if (w.options.on_lease) w.options.on_lease("");
      if (!outcome.is_ok()) return outcome.status();
      if (w.replaced.exchange(false)) {
        w.session.clear();  // dropped the task; register again (see replaced)
        continue;
      }
      w.after_task(*outcome);
      continue;
    }
    if (response.drain() && !w.idle_while_drained) {
      DIPACO_LOG(kInfo) << "worker " << w.options.worker_id << ": drained by the operator";
      break;
    }
    w.sleep_ms(response.wait_ms());
  }
  w.unregister();
  DIPACO_LOG(kInfo) << "worker " << w.options.worker_id << ": stopped after "
                    << stats_.tasks_completed << " tasks";
  return Status::ok();
}

}  // namespace dipaco
