// Randomized, seeded sequences of worker and operator actions against the coordinator, with the
// invariants checked on the committed database after every step:
//   - no task is held by two live leases; a task is 'leased' exactly when it has a live lease;
//   - a task is 'done' exactly when one lease completed it, and each (path, shard, outer step)
//     completes at most once (exactly once, or is skipped, by the end);
//   - accepted bytes never exceed a module's size (no chunk counted twice), and every
//     aggregated payload is exactly the bytes its lease sent;
//   - module versions only move by +1, once per recorded aggregation;
//   - a leasable task's modules are all at its outer step; a worker holds one live lease.
#include <QtTest>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>

#include "coordinator/coordinator.h"
#include "coordinator_fixture.h"

using coordinator_test::Env;
using coordinator_test::gradient_bytes;
using coordinator_test::grid_2x2;
using dipaco::EventKind;
using dipaco::TaskGrant;

namespace {

constexpr int kWorkers = 3;
constexpr size_t kChunk = 16;
constexpr size_t kModuleBytes = 40;  // 3 chunks per module

struct Chunk {
  uint64_t sequence;
  uint32_t module_id;
  uint64_t offset;
};

// What a simulated worker holds.
struct Held {
  TaskGrant grant;
  std::vector<Chunk> plan;  // every chunk of the task, in push order
  size_t next = 0;          // chunks of plan pushed so far
};

std::vector<Chunk> plan_of(const TaskGrant& grant) {
  std::vector<Chunk> plan;
  uint64_t sequence = 0;
  for (const auto& module : grant.modules)
    for (uint64_t offset = 0; offset < kModuleBytes; offset += kChunk)
      plan.push_back({sequence++, module.module_id, offset});
  return plan;
}

dipaco::PushChunk chunk_of(const TaskGrant& grant, const Chunk& chunk, std::string& storage) {
  storage = gradient_bytes(grant.lease_id, chunk.module_id, kModuleBytes);
  dipaco::PushChunk push;
  push.lease_id = grant.lease_id;
  push.sequence = chunk.sequence;
  push.module_id = chunk.module_id;
  push.offset_bytes = chunk.offset;
  push.total_bytes = kModuleBytes;
  push.data = std::string_view(storage).substr(chunk.offset, kChunk);
  return push;
}

// What the sequences exercised, summed over all of them (printed once, to see the mix).
struct Tally {
  int leases = 0, pushes = 0, duplicates = 0, refused = 0, preempts = 0, restarts = 0,
      aggregations = 0, partial = 0, skipped = 0;
};
Tally tally;

class Sequence {
 public:
  Sequence(uint64_t seed, int operations) : seed_(seed), operations_(operations), random_(seed) {}

  // Returns an empty string on success, else what broke and where.
  std::string run() {
    // Every other sequence with task affinity: leases then also wait for their owners.
    env_.affinity_grace_ms = seed_ % 2 == 1 ? 1500 : 0;
    if (auto opened = env_.open(); !opened) return opened.to_string();
    dipaco::RunSpec spec = grid_2x2(3);
    partial_ = seed_ % 2 == 1;
    if (partial_) {
      spec.partial.after_ms = 3000;
      spec.partial.min_fraction = 0.5;
    }
    auto run = env_.coordinator->create_run(spec);
    if (!run.is_ok()) return run.status().to_string();
    run_ = *run;
    for (int w = 0; w < kWorkers; ++w)
      if (!env_.coordinator->register_worker({worker(w), "h", "cpu", "0"}).is_ok())
        return "register failed";
    auto reader = dipaco::SqliteDb::open(env_.db_path());
    if (!reader.is_ok()) return reader.status().to_string();
    reader_ = std::move(reader).value();
    if (auto status = snapshot_versions(); !status.empty()) return status;

    for (step_ = 0; step_ < operations_; ++step_) {
      std::string error = random_operation();
      if (error.empty()) error = check_invariants();
      if (!error.empty()) return where() + error;
    }
    std::string error = finish();
    if (!error.empty()) return where() + "finishing: " + error;
    return {};
  }

 private:
  static std::string worker(int w) { return "w" + std::to_string(w); }
  std::string where() const {
    return "seed " + std::to_string(seed_) + " operation " + std::to_string(step_) + " (" +
           last_operation_ + "): ";
  }
  int uniform(int n) { return std::uniform_int_distribution<int>(0, n - 1)(random_); }

  std::string random_operation() {
    int w = uniform(kWorkers);
    switch (uniform(12)) {
      case 0:
      case 1: return lease(w);
      case 2: return heartbeat(w);
      case 3:
      case 4:
        last_operation_ = "advance clock";
        env_.clock.advance(uniform(700));
        return {};
      case 5:
      case 6:
      case 7: return push(w);
      case 8: return duplicate_push();
      case 9: return late_push();
      case 10: {
        int pick = uniform(8);
        if (pick == 0) return preempt(w);
        if (pick == 1) return restart();
        if (pick == 2) return drain_or_register(w);
        return aggregate();
      }
      default: return aggregate();
    }
  }

  std::string lease(int w) {
    last_operation_ = "lease " + worker(w);
    auto reply = env_.coordinator->lease_task(worker(w));
    if (!reply.is_ok()) return reply.status().to_string();
    if (!reply->task) return {};
    if (previous_lease_[w] == reply->task->lease_id) {
      // The same lease again (a retried LeaseTask): keep the progress we had.
      if (!kept_[w])
        return "lease " + std::to_string(previous_lease_[w]) + " came back after it ended";
      held_[w] = *kept_[w];
      return {};
    }
    // A new lease means the old one died without this worker hearing of it (the SQL checks
    // confirm no worker holds two live leases).
    drop(w);
    Held& slot = held_[w].emplace();
    slot.grant = *reply->task;
    ++tally.leases;
    slot.plan = plan_of(slot.grant);
    previous_lease_[w] = slot.grant.lease_id;
    kept_[w] = slot;
    return {};
  }

  void drop(int w) {
    if (held_[w]) dead_.push_back(*held_[w]);
    held_[w].reset();
    kept_[w].reset();
  }

  std::string heartbeat(int w) {
    last_operation_ = "heartbeat " + worker(w);
    int64_t lease = held_[w] ? held_[w]->grant.lease_id : 0;
    auto reply = env_.coordinator->heartbeat(worker(w), lease, 1);
    if (!reply.is_ok()) return reply.status().to_string();
    if (lease != 0 && !reply->lease_valid) drop(w);
    return {};
  }

  std::string push(int w) {
    if (!held_[w]) return lease(w);
    Held& held = *held_[w];
    last_operation_ =
        "push lease " + std::to_string(held.grant.lease_id) + " chunk " + std::to_string(held.next);
    std::string storage;
    auto reply = env_.coordinator->accept_push(chunk_of(held.grant, held.plan[held.next], storage));
    if (!reply.is_ok()) return reply.status().to_string();
    if (!reply->accepted) {
      drop(w);
      return {};
    }
    if (reply->duplicate) return "a first push came back as a duplicate";
    accepted_.push_back({held.grant, held.plan[held.next]});
    ++tally.pushes;
    ++held.next;
    kept_[w] = held;
    if (reply->task_complete != (held.next == held.plan.size()))
      return "task_complete is " + std::to_string(reply->task_complete) + " after chunk " +
             std::to_string(held.next) + " of " + std::to_string(held.plan.size());
    if (reply->task_complete) {
      held_[w].reset();
      kept_[w].reset();
    }
    return {};
  }

  std::string duplicate_push() {
    last_operation_ = "duplicate push";
    if (accepted_.empty()) return {};
    auto [grant, chunk] =
        accepted_[static_cast<size_t>(uniform(static_cast<int>(accepted_.size())))];
    std::string storage;
    auto reply = env_.coordinator->accept_push(chunk_of(grant, chunk, storage));
    if (!reply.is_ok()) return reply.status().to_string();
    if (!reply->accepted || !reply->duplicate)
      return "a retried chunk of lease " + std::to_string(grant.lease_id) +
             " was not acknowledged as a duplicate: " + reply->reason;
    if (reply->module_complete || reply->task_complete) return "a duplicate completed something";
    ++tally.duplicates;
    return {};
  }

  std::string late_push() {
    last_operation_ = "late push";
    if (dead_.empty()) return {};
    Held& held = dead_[static_cast<size_t>(uniform(static_cast<int>(dead_.size())))];
    if (held.next >= held.plan.size()) return {};
    std::string storage;
    auto reply = env_.coordinator->accept_push(chunk_of(held.grant, held.plan[held.next], storage));
    if (!reply.is_ok()) return reply.status().to_string();
    if (reply->accepted)
      return "a push for dead lease " + std::to_string(held.grant.lease_id) + " was accepted";
    if (reply->reason.empty()) return "a refusal without a reason";
    ++tally.refused;
    return {};
  }

  std::string preempt(int w) {
    if (!held_[w]) return {};
    last_operation_ = "preempt lease " + std::to_string(held_[w]->grant.lease_id);
    auto reply = env_.coordinator->preempt(held_[w]->grant.lease_id);
    if (!reply.is_ok()) return reply.status().to_string();
    tally.preempts += reply->changed;
    drop(w);
    return {};
  }

  std::string restart() {
    ++tally.restarts;
    bool expire = uniform(2) == 1;
    last_operation_ = expire ? "restart (expire leases)" : "restart (keep leases)";
    auto status = env_.open(expire ? dipaco::RestartPolicy::kExpireLeases
                                   : dipaco::RestartPolicy::kKeepLeases);
    if (!status.is_ok()) return status.to_string();
    return {};
  }

  std::string drain_or_register(int w) {
    last_operation_ = "drain/undrain/register " + worker(w);
    const int choice = uniform(3);
    if (choice == 0) return env_.coordinator->drain(worker(w)).status().to_string().substr(0, 0);
    if (choice == 1) return env_.coordinator->undrain(worker(w)).status().to_string().substr(0, 0);
    auto registered = env_.coordinator->register_worker({worker(w), "h", "cpu", "0"});
    return registered.is_ok() ? std::string() : registered.status().to_string();
  }

  std::string aggregate() {
    last_operation_ = "aggregate";
    auto pending = env_.coordinator->pending_aggregations(run_);
    if (!pending.is_ok()) return pending.status().to_string();
    for (const auto& decision : *pending) {
      std::set<std::pair<uint32_t, uint32_t>> sources;
      for (const auto& report : decision.reports) {
        if (!sources.insert({report.path_id, report.shard_id}).second)
          return "module " + std::to_string(decision.module_id) + " step " +
                 std::to_string(decision.outer_step) + " has two reports from path " +
                 std::to_string(report.path_id);
        auto payload = env_.coordinator->read_gradient(report);
        if (!payload.is_ok()) return payload.status().to_string();
        if (*payload != gradient_bytes(report.lease_id, decision.module_id, kModuleBytes))
          return "the payload of lease " + std::to_string(report.lease_id) + " module " +
                 std::to_string(decision.module_id) + " is not what it sent";
      }
      if (decision.reports.size() > decision.tasks_expected) return "more reports than tasks";
      if (!partial_ && decision.partial) return "a partial aggregation without the policy";
      if (versions_.at(decision.module_id) != decision.outer_step)
        return "a decision for module " + std::to_string(decision.module_id) + " at step " +
               std::to_string(decision.outer_step) + " but it is at version " +
               std::to_string(versions_.at(decision.module_id));
      auto status = env_.coordinator->complete_aggregation(run_, decision.module_id,
                                                           decision.outer_step, "ckpt", "sha");
      if (!status.is_ok()) return status.to_string();
      ++versions_[decision.module_id];
      ++tally.aggregations;
      tally.partial += decision.partial;
    }
    return {};
  }

  std::string snapshot_versions() {
    auto status = env_.coordinator->run_status(run_);
    if (!status.is_ok()) return status.status().to_string();
    versions_ = status->module_versions;
    return {};
  }

  int64_t count(const char* sql) {
    auto statement = reader_.cached(sql);
    if (!statement.is_ok()) qFatal("%s", statement.status().to_string().c_str());
    auto row = statement->step();
    if (!row.is_ok() || !*row) qFatal("%s: no row", sql);
    return statement->column_int64(0);
  }

  std::string check_invariants() {
    static const std::pair<const char*, const char*> kChecks[] = {
        {"a task with two live leases",
         "SELECT count(*) FROM (SELECT task FROM leases WHERE state = 'live' GROUP BY task "
         "HAVING count(*) > 1)"},
        {"a task 'leased' without exactly one live lease (or the reverse)",
         "SELECT count(*) FROM tasks t WHERE (t.state = 'leased') != ((SELECT count(*) FROM "
         "leases l WHERE l.task = t.id AND l.state = 'live') = 1)"},
        {"a task 'done' without exactly one completed lease (or the reverse)",
         "SELECT count(*) FROM tasks t WHERE (t.state = 'done') != ((SELECT count(*) FROM "
         "leases l WHERE l.task = t.id AND l.state = 'completed') = 1)"},
        {"a task completed twice",
         "SELECT count(*) FROM (SELECT task FROM leases WHERE state = 'completed' GROUP BY task "
         "HAVING count(*) > 1)"},
        {"more bytes accepted than a module has",
         "SELECT count(*) FROM (SELECT sum(size_bytes) s, max(total_bytes) t FROM push_chunks "
         "GROUP BY lease, module HAVING s > t)"},
        {"module versions with a gap",
         "SELECT count(*) FROM modules m WHERE (SELECT count(*) FROM module_versions v WHERE "
         "v.module = m.id) != m.version + 1"},
        {"a leasable task whose modules are not at its outer step",
         "SELECT count(*) FROM tasks t JOIN path_modules pm ON pm.path = t.path JOIN modules m ON "
         "m.id = pm.module WHERE t.state IN ('queued', 'leased') AND m.version != t.outer_step"},
        {"a worker with two live leases",
         "SELECT count(*) FROM (SELECT worker FROM leases WHERE state = 'live' GROUP BY worker "
         "HAVING count(*) > 1)"},
    };
    for (const auto& [what, sql] : kChecks)
      if (count(sql) != 0) return what;
    auto versions = reader_.cached("SELECT module_id, version FROM modules ORDER BY module_id");
    std::map<uint32_t, uint64_t> now;
    while (versions.is_ok() && *versions->step())
      now[static_cast<uint32_t>(versions->column_int64(0))] =
          static_cast<uint64_t>(versions->column_int64(1));
    if (now != versions_) return "module versions moved without aggregation";
    for (const auto& event : env_.seen) {
      if (event.kind != EventKind::kLeaseCompleted) continue;
      if (++completions_[{event.path_id, event.shard_id, event.outer_step}] > 1)
        return "path " + std::to_string(event.path_id) + " outer step " +
               std::to_string(event.outer_step) + " completed twice";
    }
    env_.seen.clear();
    return {};
  }

  // Everyone comes back and works the run to its end without faults.
  std::string finish() {
    last_operation_ = "finish";
    env_.clock.advance(10'000);
    for (int w = 0; w < kWorkers; ++w) {
      drop(w);
      auto registered = env_.coordinator->register_worker({worker(w), "h", "cpu", "0"});
      if (!registered.is_ok()) return registered.status().to_string();
      // A drain outlives registering again: the operator lets the drained ones back.
      auto undrained = env_.coordinator->undrain(worker(w));
      if (!undrained.is_ok()) return undrained.status().to_string();
      if (undrained->changed != registered->drain) return "register and undrain disagree";
    }
    for (int round = 0; round < 100; ++round) {
      for (int w = 0; w < kWorkers; ++w) {
        if (auto error = lease(w); !error.empty()) return error;
        while (held_[w])
          if (auto error = push(w); !error.empty()) return error;
      }
      if (auto error = aggregate(); !error.empty()) return error;
      if (auto error = check_invariants(); !error.empty()) return error;
      env_.clock.advance(4000);  // lets partial aggregation deadlines pass
      auto status = env_.coordinator->run_status(run_);
      if (status->state == "finished") {
        if (status->tasks_done + status->tasks_skipped != 12) return "not every task resolved";
        if (!partial_ && status->tasks_skipped != 0) return "tasks skipped without the policy";
        tally.skipped += static_cast<int>(status->tasks_skipped);
        int64_t completed = 0;
        for (const auto& [task, n] : completions_) completed += n;
        if (completed != status->tasks_done)
          return std::to_string(completed) + " completions for " +
                 std::to_string(status->tasks_done) + " done tasks";
        for (const auto& [module, version] : status->module_versions)
          if (version != 3) return "a module did not reach version 3";
        return {};
      }
    }
    return "the run did not finish";
  }

  uint64_t seed_;
  int operations_;
  std::mt19937_64 random_;
  Env env_;
  dipaco::SqliteDb reader_;
  int64_t run_ = 0;
  bool partial_ = false;
  int step_ = 0;
  std::string last_operation_;
  std::optional<Held> held_[kWorkers];
  std::optional<Held> kept_[kWorkers];  // progress on the lease, if lease_task hands it back
  int64_t previous_lease_[kWorkers] = {};
  std::vector<Held> dead_;
  std::vector<std::pair<TaskGrant, Chunk>> accepted_;
  std::map<uint32_t, uint64_t> versions_;
  std::map<std::tuple<uint32_t, uint32_t, uint64_t>, int> completions_;
};

}  // namespace

class CoordinatorPropertyTest : public QObject {
  Q_OBJECT

 private slots:
  void randomSequencesKeepTheInvariants() {
    // 100 sequences take about 5 s of CPU; DIPACO_COORDINATOR_SEQUENCES=2000 for a longer soak.
    int sequences = qEnvironmentVariableIntValue("DIPACO_COORDINATOR_SEQUENCES");
    if (sequences <= 0) sequences = 100;
    for (int i = 0; i < sequences; ++i) {
      Sequence sequence(1000 + static_cast<uint64_t>(i), 300);
      std::string error = sequence.run();
      QVERIFY2(error.empty(), error.c_str());
    }
    qInfo(
        "%d sequences: %d leases, %d chunks, %d duplicates, %d late pushes refused, %d "
        "preemptions, %d restarts, %d aggregations (%d partial), %d tasks skipped",
        sequences, tally.leases, tally.pushes, tally.duplicates, tally.refused, tally.preempts,
        tally.restarts, tally.aggregations, tally.partial, tally.skipped);
  }
};

QTEST_GUILESS_MAIN(CoordinatorPropertyTest)
#include "test_coordinator_property.moc"
