#include "run_watcher.h"

#include <chrono>
#include <string>

#include "attach_errors.h"
#include "dipaco/v1/coordinator.grpc.pb.h"
#include "rpc/auth.h"
#include "watch_event.h"

namespace dipaco::studio {

namespace {
constexpr auto kPoll = std::chrono::milliseconds(200);
// A stream opened on a channel that did not connect only fetches gRPC's reason.
constexpr auto kReasonDeadline = std::chrono::seconds(3);
}  // namespace

RunWatcher::RunWatcher(std::shared_ptr<grpc::Channel> channel, AttachSettings settings,
                       std::shared_ptr<RunEventBuffer> buffer, int connect_timeout_ms)
    : channel_(std::move(channel)),
      settings_(std::move(settings)),
      buffer_(std::move(buffer)),
      connect_timeout_ms_(connect_timeout_ms) {}

void RunWatcher::cancel() {
  cancelled_.store(true);
  std::lock_guard<std::mutex> lock(context_mutex_);
  if (context_ != nullptr) context_->TryCancel();
}

bool RunWatcher::wait_for_connection() {
  const auto deadline =
      std::chrono::system_clock::now() + std::chrono::milliseconds(connect_timeout_ms_);
  grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    // A refused connection or a failed handshake: no point in waiting for the backoff.
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) return false;
    if (cancelled_.load()) return false;
    const auto now = std::chrono::system_clock::now();
    if (now >= deadline) return false;
    channel_->WaitForStateChange(state, std::min(deadline, now + kPoll));
    state = channel_->GetState(/*try_to_connect=*/true);
  }
  return true;
}

void RunWatcher::run() {
  const bool ready = wait_for_connection();
  if (cancelled_.load()) {
    emit ended(tr("detached"));
    return;
  }
  auto stub = v1::Coordinator::NewStub(channel_);
  grpc::ClientContext context;
  add_bearer_token(context, settings_.token);
  if (!ready) context.set_deadline(std::chrono::system_clock::now() + kReasonDeadline);
  {
    std::lock_guard<std::mutex> lock(context_mutex_);
    context_ = &context;
  }
  v1::RunRequest request;
  request.set_run_id(std::to_string(settings_.run_id));
  auto reader = stub->WatchRun(&context, request);
  v1::RunEvent event;
  bool first = true;
  while (reader->Read(&event)) {
    if (first) {
      first = false;
      emit connected();
    }
    std::optional<RunEvent> e = from_watch_event(event, settings_.run_id);
    if (!e) continue;
    ++received_;
    if (buffer_) buffer_->push(*e);
  }
  const grpc::Status status = reader->Finish();
  {
    std::lock_guard<std::mutex> lock(context_mutex_);
    context_ = nullptr;
  }
  if (cancelled_.load()) {
    emit ended(tr("detached"));
  } else if (status.ok()) {
    emit ended(tr("the coordinator at %1 ended the stream (it is stopping)")
                   .arg(QString::fromStdString(settings_.address)));
  } else if (!ready && status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    emit failed(QString::fromStdString(explain_attach_failure(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "could not connect"), settings_)));
  } else {
    emit failed(QString::fromStdString(explain_attach_failure(status, settings_)));
  }
}

}  // namespace dipaco::studio
