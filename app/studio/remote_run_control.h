// RemoteRunControl: the operator actions over the operator RPCs of a running `dipaco serve`
// (Pause, Resume, SetInnerSteps, PreemptTask, DrainWorker, UndrainWorker, ListWorkers), each
// with the operator token and a 10 s deadline. Used by the studio's dashboard and by
// `dipaco ctl`. Calls block their caller (the dashboard makes them off the GUI thread);
// failures come back as Status with explain_attach_failure()'s message. An older coordinator
// without ListWorkers or UndrainWorker answers UNIMPLEMENTED: the Status says so (the
// dashboard's worker table is then built from lease events alone).
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
  Result<OperatorReply> undrain(const std::string& worker_id) override;
  Result<std::vector<WorkerStatus>> workers() override;

 private:
  struct Target {
    std::shared_ptr<v1::Coordinator::Stub> stub;
    AttachSettings settings;
  };
  // The current stub and settings, or null when detached.
  std::shared_ptr<const Target> target() const;
  // Fills the context: the token and the deadline.
  static void prepare(grpc::ClientContext& context, const AttachSettings& settings);
  // A failed call as a Status: kUnavailable when the coordinator cannot be reached (retrying
  // may help), kFailedPrecondition otherwise; `rpc` names the call for an older coordinator
  // that does not have it.
  static Status failure(const grpc::Status& status, const AttachSettings& settings,
                        const char* rpc);
  // One unary call: fills the context (token, deadline), maps a failure.
  template <typename Request>
  Result<OperatorReply> call(const Request& request,
                             grpc::Status (v1::Coordinator::Stub::*method)(grpc::ClientContext*,
                                                                           const Request&,
                                                                           v1::OperatorResponse*),
                             const char* rpc);

  mutable std::mutex mutex_;
  std::shared_ptr<const Target> target_;
};

}  // namespace dipaco::studio
