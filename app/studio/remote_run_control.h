// RemoteRunControl: the dashboard's operator actions over the operator RPCs of a running
// `dipaco serve` (Pause, Resume, SetInnerSteps, PreemptTask, DrainWorker), each with the
// operator token and a 10 s deadline. Calls block their caller (the dashboard makes them off
// the GUI thread); failures come back as Status with explain_attach_failure()'s message.
// The service has no worker-list RPC: workers() says so, and the dashboard's worker table is
// built from lease events alone.
#pragma once

#include <memory>
#include <mutex>

#include "attach_settings.h"
#include "dipaco/v1/coordinator.grpc.pb.h"
#include "run_control.h"

namespace dipaco::studio {

class RemoteRunControl : public RunControl {
 public:
  // Thread-safe; calls in flight finish on the old channel.
  void attach(const std::shared_ptr<grpc::Channel>& channel, const AttachSettings& settings);
  void detach();

  bool attached() const override;
  Result<OperatorReply> pause() override;
  Result<OperatorReply> resume() override;
  Result<OperatorReply> set_inner_steps(uint32_t inner_steps) override;
  Result<OperatorReply> preempt(int64_t lease_id) override;
  Result<OperatorReply> drain(const std::string& worker_id) override;
  Result<std::vector<WorkerStatus>> workers() override;
  bool lists_workers() const override { return false; }

 private:
  struct Target {
    std::shared_ptr<v1::Coordinator::Stub> stub;
    AttachSettings settings;
  };
  // The current stub and settings, or null when detached.
  std::shared_ptr<const Target> target() const;
  // One unary call: fills the context (token, deadline), maps a failure.
  template <typename Request>
  Result<OperatorReply> call(const Request& request,
                             grpc::Status (v1::Coordinator::Stub::*method)(grpc::ClientContext*,
                                                                           const Request&,
                                                                           v1::OperatorResponse*));

  mutable std::mutex mutex_;
  std::shared_ptr<const Target> target_;
};

}  // namespace dipaco::studio
