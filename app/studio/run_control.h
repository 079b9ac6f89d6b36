// RunControl: the operator actions the dashboard offers, independent of where the run lives.
// LocalRunControl implements it over the Coordinator of a run_local() in this process; an
// attach-to-`dipaco serve` implementation would map the same calls onto RPCs.
//
// Every method is safe to call from the GUI thread at any time: with no run attached it
// returns kFailedPrecondition ("no run is attached"). Replies carry the coordinator's message.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/coordinator.h"
#include "util/status.h"

namespace dipaco::studio {

class RunControl {
 public:
  virtual ~RunControl() = default;
  virtual bool attached() const = 0;
  virtual Result<OperatorReply> pause() = 0;
  virtual Result<OperatorReply> resume() = 0;
  // H for the outer steps opened from now on.
  virtual Result<OperatorReply> set_inner_steps(uint32_t inner_steps) = 0;
  virtual Result<OperatorReply> preempt(int64_t lease_id) = 0;
  virtual Result<OperatorReply> drain(const std::string& worker_id) = 0;
  // Lets a drained worker take tasks again (a drain lasts across the worker's restarts).
  virtual Result<OperatorReply> undrain(const std::string& worker_id) = 0;
  virtual Result<std::vector<WorkerStatus>> workers() = 0;
  // False when workers() can never answer (the dashboard then does not poll it).
  virtual bool lists_workers() const { return true; }
};

// Over an in-process Coordinator. attach() when run_local() reports on_started; detach()
// before the coordinator dies (before asking the run to stop; after it returns). Calls hold an
// internal mutex, so detach() waits for a call in flight. closing() is for the coordinator's
// event sink (kRunFinished), which runs under the coordinator's lock and so must not take this
// one: it only sets a flag that makes later calls fail as if detached.
// Known gap: a run that fails on its own (a worker error) destroys its coordinator without a
// warning event; an operator call racing with that exact moment is not protected.
class LocalRunControl : public RunControl {
 public:
  void attach(Coordinator* coordinator, int64_t run_id);
  void detach();
  void closing() { closing_.store(true); }

  bool attached() const override;
  Result<OperatorReply> pause() override;
  Result<OperatorReply> resume() override;
  Result<OperatorReply> set_inner_steps(uint32_t inner_steps) override;
  Result<OperatorReply> preempt(int64_t lease_id) override;
  Result<OperatorReply> drain(const std::string& worker_id) override;
  Result<OperatorReply> undrain(const std::string& worker_id) override;
  Result<std::vector<WorkerStatus>> workers() override;

 private:
  Coordinator* live() const { return closing_.load() ? nullptr : coordinator_; }

  mutable std::mutex mutex_;
  std::atomic<bool> closing_{false};
  Coordinator* coordinator_ = nullptr;
  int64_t run_id_ = 0;
};

}  // namespace dipaco::studio
