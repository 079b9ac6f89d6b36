#include "remote_run_control.h"

#include <charconv>
#include <chrono>
#include <string>

#include "attach_errors.h"
#include "rpc/auth.h"

namespace dipaco::studio {

namespace {
constexpr auto kCallDeadline = std::chrono::seconds(10);

Status not_attached() {
  return failed_precondition("not attached to a dipaco serve (attach in the Launch tab)");
}
}  // namespace

void RemoteRunControl::attach(const std::shared_ptr<grpc::Channel>& channel,
                              const AttachSettings& settings) {
  auto target = std::make_shared<Target>();
  target->stub = v1::Coordinator::NewStub(channel);
  target->settings = settings;
  std::lock_guard<std::mutex> lock(mutex_);
  target_ = std::move(target);
}

void RemoteRunControl::detach() {
  std::lock_guard<std::mutex> lock(mutex_);
  target_.reset();
}

std::shared_ptr<const RemoteRunControl::Target> RemoteRunControl::target() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return target_;
}

bool RemoteRunControl::attached() const {
  return target() != nullptr;
}

void RemoteRunControl::prepare(grpc::ClientContext& context, const AttachSettings& settings) {
  add_bearer_token(context, settings.token);
  context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
}

Status RemoteRunControl::failure(const grpc::Status& status, const AttachSettings& settings,
                                 const char* rpc) {
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED)
    return failed_precondition("the coordinator at " + settings.address + " has no " + rpc +
                               " call: it runs an older dipaco; upgrade dipaco serve");
  // A worker or lease the coordinator does not know: its own words name it.
  if (status.error_code() == grpc::StatusCode::NOT_FOUND && std::string(rpc) != "Pause" &&
      std::string(rpc) != "Resume" && std::string(rpc) != "SetInnerSteps")
    return failed_precondition("the coordinator at " + settings.address +
                               " refused: " + status.error_message());
  const std::string message = explain_attach_failure(status, settings);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
    return unavailable(message);
  return failed_precondition(message);
}

template <typename Request>
Result<OperatorReply> RemoteRunControl::call(
    const Request& request,
    grpc::Status (v1::Coordinator::Stub::*method)(grpc::ClientContext*, const Request&,
                                                  v1::OperatorResponse*),
    const char* rpc) {
  std::shared_ptr<const Target> t = target();
  if (!t) return not_attached();
  grpc::ClientContext context;
  prepare(context, t->settings);
  v1::OperatorResponse response;
  const grpc::Status status = ((*t->stub).*method)(&context, request, &response);
  if (!status.ok()) return failure(status, t->settings, rpc);
  return OperatorReply{response.changed(), response.message()};
}

Result<OperatorReply> RemoteRunControl::pause() {
  std::shared_ptr<const Target> t = target();
  if (!t) return not_attached();
  v1::RunRequest request;
  request.set_run_id(std::to_string(t->settings.run_id));
  return call(request, &v1::Coordinator::Stub::Pause, "Pause");
}

Result<OperatorReply> RemoteRunControl::resume() {
  std::shared_ptr<const Target> t = target();
  if (!t) return not_attached();
  v1::RunRequest request;
  request.set_run_id(std::to_string(t->settings.run_id));
  return call(request, &v1::Coordinator::Stub::Resume, "Resume");
}

Result<OperatorReply> RemoteRunControl::set_inner_steps(uint32_t inner_steps) {
  std::shared_ptr<const Target> t = target();
  if (!t) return not_attached();
  v1::SetInnerStepsRequest request;
  request.set_run_id(std::to_string(t->settings.run_id));
  request.set_inner_steps(inner_steps);
  return call(request, &v1::Coordinator::Stub::SetInnerSteps, "SetInnerSteps");
}

Result<OperatorReply> RemoteRunControl::preempt(int64_t lease_id) {
  v1::PreemptTaskRequest request;
  request.set_lease_id(std::to_string(lease_id));
  return call(request, &v1::Coordinator::Stub::PreemptTask, "PreemptTask");
}

Result<OperatorReply> RemoteRunControl::drain(const std::string& worker_id) {
  v1::DrainWorkerRequest request;
  request.set_worker_id(worker_id);
  return call(request, &v1::Coordinator::Stub::DrainWorker, "DrainWorker");
}

Result<OperatorReply> RemoteRunControl::undrain(const std::string& worker_id) {
  v1::DrainWorkerRequest request;
  request.set_worker_id(worker_id);
  return call(request, &v1::Coordinator::Stub::UndrainWorker, "UndrainWorker");
}

Result<std::vector<WorkerStatus>> RemoteRunControl::workers() {
  std::shared_ptr<const Target> t = target();
  if (!t) return not_attached();
  grpc::ClientContext context;
  prepare(context, t->settings);
  v1::ListWorkersResponse response;
  const grpc::Status status = t->stub->ListWorkers(&context, v1::ListWorkersRequest(), &response);
  if (!status.ok()) return failure(status, t->settings, "ListWorkers");
  std::vector<WorkerStatus> workers;
  for (const v1::WorkerSummary& w : response.workers()) {
    WorkerStatus worker;
    worker.worker_id = w.worker_id();
    worker.host = w.host();
    worker.devices = w.devices();
    worker.version = w.version();
    worker.state = w.state();
    worker.last_heartbeat_ms = static_cast<int64_t>(w.last_heard_unix_ms());
    std::from_chars(w.live_lease_id().data(), w.live_lease_id().data() + w.live_lease_id().size(),
                    worker.live_lease_id);
    workers.push_back(std::move(worker));
  }
  return workers;
}

}  // namespace dipaco::studio
