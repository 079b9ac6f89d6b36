#include "remote_run_control.h"

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

template <typename Request>
Result<OperatorReply> RemoteRunControl::call(
    const Request& request,
    grpc::Status (v1::Coordinator::Stub::*method)(grpc::ClientContext*, const Request&,
                                                  v1::OperatorResponse*)) {
  std::shared_ptr<const Target> t = target();
  if (!t) return not_attached();
  grpc::ClientContext context;
  add_bearer_token(context, t->settings.token);
  context.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
  v1::OperatorResponse response;
  const grpc::Status status = ((*t->stub).*method)(&context, request, &response);
  if (!status.ok()) {
    const std::string message = explain_attach_failure(status, t->settings);
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      return unavailable(message);
    return failed_precondition(message);
  }
  return OperatorReply{response.changed(), response.message()};
}

Result<OperatorReply> RemoteRunControl::pause() {
  std::shared_ptr<const Target> t = target();
  if (!t) return not_attached();
  v1::RunRequest request;
  request.set_run_id(std::to_string(t->settings.run_id));
  return call(request, &v1::Coordinator::Stub::Pause);
}

Result<OperatorReply> RemoteRunControl::resume() {
  std::shared_ptr<const Target> t = target();
  if (!t) return not_attached();
  v1::RunRequest request;
  request.set_run_id(std::to_string(t->settings.run_id));
  return call(request, &v1::Coordinator::Stub::Resume);
}

Result<OperatorReply> RemoteRunControl::set_inner_steps(uint32_t inner_steps) {
  std::shared_ptr<const Target> t = target();
  if (!t) return not_attached();
  v1::SetInnerStepsRequest request;
  request.set_run_id(std::to_string(t->settings.run_id));
  request.set_inner_steps(inner_steps);
  return call(request, &v1::Coordinator::Stub::SetInnerSteps);
}

Result<OperatorReply> RemoteRunControl::preempt(int64_t lease_id) {
  v1::PreemptTaskRequest request;
  request.set_lease_id(std::to_string(lease_id));
  return call(request, &v1::Coordinator::Stub::PreemptTask);
}

Result<OperatorReply> RemoteRunControl::drain(const std::string& worker_id) {
  v1::DrainWorkerRequest request;
  request.set_worker_id(worker_id);
  return call(request, &v1::Coordinator::Stub::DrainWorker);
}

Result<std::vector<WorkerStatus>> RemoteRunControl::workers() {
  if (!attached()) return not_attached();
  return failed_precondition(
      "dipaco serve has no worker-list RPC: the worker table comes from lease events");
}

}  // namespace dipaco::studio
