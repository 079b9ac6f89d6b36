// Helpers shared by the coordinator tests: a fake clock, a 2x2 grid, pushing a whole task.
#pragma once

#include <QTemporaryDir>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/coordinator.h"
#include "store/sqlite_db.h"

namespace coordinator_test {

// Starts at a fixed unix time so that messages are stable; tests move it by hand.
struct FakeClock {
  std::atomic<int64_t> now_ms{1'700'000'000'000};
  dipaco::Clock clock() {
    return [this] { return now_ms.load(); };
  }
  void advance(int64_t ms) { now_ms += ms; }
};

// DiPaCo 2x2: level 0 has modules 0 and 1, level 1 has modules 2 and 3; path p uses module
// p / 2 then 2 + p % 2, and owns shard 10 + p with 1000 * (p + 1) tokens.
inline dipaco::RunSpec grid_2x2(uint64_t outer_steps = 3, uint32_t inner_steps = 50) {
  dipaco::RunSpec spec;
  spec.name = "grid 2x2";
  for (uint32_t m = 0; m < 4; ++m)
    spec.modules.push_back({m, m / 2, m % 2, "init/module" + std::to_string(m), "sha-init"});
  for (uint32_t p = 0; p < 4; ++p) {
    dipaco::PathSpec path;
    path.path_id = p;
    path.module_ids = {p / 2, 2 + p % 2};
    path.shards = {{10 + p, 1000 * (p + 1)}};
    spec.paths.push_back(path);
  }
  spec.outer_steps = outer_steps;
  spec.inner_steps = inner_steps;
  spec.lease_timeout_ms = 1000;
  return spec;
}

// Chunks kept in memory: the property tests push tens of thousands of chunks, and fsyncing each
// one would dominate their time without testing anything the file store's own tests don't.
class MemoryGradientStore : public dipaco::OuterGradientStore {
 public:
  dipaco::Result<std::string> write_chunk(int64_t run_id, int64_t lease_id, uint32_t module_id,
                                          uint64_t sequence, std::string_view bytes) override {
    std::string ref = std::to_string(run_id) + "/" + std::to_string(lease_id) + "/" +
                      std::to_string(module_id) + "/" + std::to_string(sequence);
    std::lock_guard lock(mutex_);
    chunks_[ref] = std::string(bytes);
    return ref;
  }
  dipaco::Result<std::string> read_all(const std::vector<std::string>& refs) override {
    std::lock_guard lock(mutex_);
    std::string payload;
    for (const auto& ref : refs) {
      auto found = chunks_.find(ref);
      if (found == chunks_.end()) return dipaco::not_found("chunk " + ref);
      payload += found->second;
    }
    return payload;
  }
  void remove(const std::vector<std::string>& refs) override {
    std::lock_guard lock(mutex_);
    for (const auto& ref : refs) chunks_.erase(ref);
  }
  size_t size() {
    std::lock_guard lock(mutex_);
    return chunks_.size();
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::string> chunks_;
};

struct Env {
  QTemporaryDir dir;
  FakeClock clock;
  std::unique_ptr<dipaco::Coordinator> coordinator;
  std::vector<dipaco::RunEvent> seen;  // from the sink
  // Memory by default (each file chunk costs two fsyncs); null: OuterGradientFiles in dir.
  std::shared_ptr<dipaco::OuterGradientStore> store = std::make_shared<MemoryGradientStore>();
  int64_t affinity_grace_ms = 0;  // CoordinatorOptions::affinity_grace_ms

  std::string db_path() const { return dir.filePath("coordinator.db").toStdString(); }

  dipaco::CoordinatorOptions options(
      dipaco::RestartPolicy restart = dipaco::RestartPolicy::kKeepLeases) {
    dipaco::CoordinatorOptions options;
    options.db_path = db_path();
    options.payload_dir = dir.path().toStdString();
    options.clock = clock.clock();
    options.restart = restart;
    options.sqlite.synchronous = dipaco::Synchronous::kOff;  // tests do not model power loss
    options.max_chunk_bytes = 64;
    options.gradient_store = store;
    options.affinity_grace_ms = affinity_grace_ms;
    return options;
  }

  // Opens (or reopens, dropping the old object first, as a restarted process would).
  dipaco::Status open(dipaco::RestartPolicy restart = dipaco::RestartPolicy::kKeepLeases) {
    coordinator.reset();
    auto opened = dipaco::Coordinator::open(options(restart));
    if (!opened.is_ok()) return opened.status();
    coordinator = std::move(opened).value();
    coordinator->set_event_sink([this](const dipaco::RunEvent& event) { seen.push_back(event); });
    return dipaco::Status::ok();
  }

  size_t count_seen(dipaco::EventKind kind) const {
    size_t n = 0;
    for (const auto& event : seen) n += event.kind == kind;
    return n;
  }
};

// A module's fake outer gradient: `size` bytes derived from (lease, module).
inline std::string gradient_bytes(int64_t lease_id, uint32_t module_id, size_t size = 40) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i)
    bytes[i] = static_cast<char>((lease_id * 31 + module_id * 7 + static_cast<int64_t>(i)) & 0xff);
  return bytes;
}

// Pushes every module of `grant` in chunks of `chunk` bytes, sequences from 0. Returns the last
// reply (task_complete when all went in).
inline dipaco::Result<dipaco::PushReply> push_task(dipaco::Coordinator& coordinator,
                                                   const dipaco::TaskGrant& grant,
                                                   size_t chunk = 16) {
  uint64_t sequence = 0;
  dipaco::PushReply last;
  for (const dipaco::ModuleRef& module : grant.modules) {
    std::string bytes = gradient_bytes(grant.lease_id, module.module_id);
    for (size_t offset = 0; offset < bytes.size(); offset += chunk) {
      dipaco::PushChunk push;
      push.lease_id = grant.lease_id;
      push.sequence = sequence++;
      push.module_id = module.module_id;
      push.offset_bytes = offset;
      push.total_bytes = bytes.size();
      push.data = std::string_view(bytes).substr(offset, chunk);
      auto reply = coordinator.accept_push(push);
      if (!reply.is_ok()) return reply.status();
      last = *reply;
      if (!last.accepted) return last;
    }
  }
  return last;
}

// Completes every pending aggregation of the run with a fake checkpoint. Returns how many.
inline dipaco::Result<int> aggregate_all(dipaco::Coordinator& coordinator, int64_t run) {
  auto pending = coordinator.pending_aggregations(run);
  if (!pending.is_ok()) return pending.status();
  int n = 0;
  for (const auto& decision : *pending) {
    std::string checkpoint = "ckpt/m" + std::to_string(decision.module_id) + "-v" +
                             std::to_string(decision.outer_step + 1);
    DIPACO_RETURN_IF_ERROR(coordinator.complete_aggregation(
        run, decision.module_id, decision.outer_step, checkpoint, "sha-" + checkpoint));
    ++n;
  }
  return n;
}

// Works `run` to its end from `threads` threads at once (as the gRPC handlers would): each
// registers, leases, heartbeats, pushes its task, retries the whole push (all duplicates),
// aggregates whatever is pending, and thread 3 reports metrics. Returns what went wrong (a
// QVERIFY cannot fail off the main thread); empty when the run finished cleanly.
inline std::vector<std::string> work_run_from_threads(dipaco::Coordinator& coordinator, int64_t run,
                                                      int threads) {
  std::mutex errors_mutex;
  std::vector<std::string> errors;
  auto fail = [&](const std::string& error) {
    std::lock_guard lock(errors_mutex);
    errors.push_back(error);
  };
  std::atomic<bool> finished{false};
  auto work = [&](int t) {
    std::string worker = "thread" + std::to_string(t);
    if (!coordinator.register_worker({worker, "h", "cpu", "0"}).is_ok()) return fail("register");
    for (int i = 0; i < 500 && !finished; ++i) {
      auto reply = coordinator.lease_task(worker);
      if (!reply.is_ok()) return fail(reply.status().to_string());
      if (reply->task) {
        auto beat = coordinator.heartbeat(worker, reply->task->lease_id, 1);
        if (!beat.is_ok() || !beat->lease_valid) return fail("lost a lease: " + beat->reason);
        auto pushed = push_task(coordinator, *reply->task);
        if (!pushed.is_ok() || !pushed->task_complete) return fail("push did not complete");
        auto again = push_task(coordinator, *reply->task);  // a full retry: all duplicates
        if (!again.is_ok() || !again->duplicate) return fail("retry was not a duplicate");
      }
      auto aggregated = aggregate_all(coordinator, run);
      if (!aggregated.is_ok()) return fail(aggregated.status().to_string());
      if (t == 3) (void)coordinator.report_metrics({{run, 0, 0, uint64_t(i), "loss", 1.0, 0}});
      auto status = coordinator.run_status(run);
      if (!status.is_ok()) return fail(status.status().to_string());
      if (status->state == "finished") finished = true;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work, t);
  for (auto& thread : pool) thread.join();
  if (!finished) errors.push_back("the run did not finish");
  return errors;
}

// Reads the committed state with a second connection, as an operator's sqlite3 shell would.
inline int64_t db_count(const std::string& db_path, const std::string& sql) {
  auto db = dipaco::SqliteDb::open(db_path);
  if (!db.is_ok()) qFatal("%s", db.status().to_string().c_str());
  auto statement = db->prepare(sql);
  if (!statement.is_ok()) qFatal("%s", statement.status().to_string().c_str());
  auto row = statement->step();
  if (!row.is_ok() || !*row) qFatal("no row for %s", sql.c_str());
  return statement->column_int64(0);
}

}  // namespace coordinator_test
