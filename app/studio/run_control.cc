#include "run_control.h"

namespace dipaco::studio {

namespace {
Status not_attached() {
  return failed_precondition("no run is attached (start a local run first)");
}
}  // namespace

void LocalRunControl::attach(Coordinator* coordinator, int64_t run_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  coordinator_ = coordinator;
  run_id_ = run_id;
  closing_.store(false);
}

void LocalRunControl::detach() {
  std::lock_guard<std::mutex> lock(mutex_);
  coordinator_ = nullptr;
  run_id_ = 0;
}

bool LocalRunControl::attached() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return live() != nullptr;
}

Result<OperatorReply> LocalRunControl::pause() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (live() == nullptr) return not_attached();
  return coordinator_->pause(run_id_);
}

Result<OperatorReply> LocalRunControl::resume() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (live() == nullptr) return not_attached();
  return coordinator_->resume(run_id_);
}

Result<OperatorReply> LocalRunControl::set_inner_steps(uint32_t inner_steps) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (live() == nullptr) return not_attached();
  return coordinator_->set_inner_steps(run_id_, inner_steps);
}

Result<OperatorReply> LocalRunControl::preempt(int64_t lease_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (live() == nullptr) return not_attached();
  return coordinator_->preempt(lease_id);
}

Result<OperatorReply> LocalRunControl::drain(const std::string& worker_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (live() == nullptr) return not_attached();
  return coordinator_->drain(worker_id);
}

Result<OperatorReply> LocalRunControl::undrain(const std::string& worker_id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (live() == nullptr) return not_attached();
  return coordinator_->undrain(worker_id);
}

Result<std::vector<WorkerStatus>> LocalRunControl::workers() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (live() == nullptr) return not_attached();
  return coordinator_->workers();
}

}  // namespace dipaco::studio
