// RunWatcher: the WatchRun stream of one run of a `dipaco serve`, read on a worker QThread.
//
// run() blocks that thread: it waits (at most connect_timeout_ms) for the channel to connect,
// opens WatchRun with the operator token, and pushes every event (RunEvent, watch_event.h) into
// the buffer the dashboard drains on its frame timer. The server replays the run's events
// from the start, then streams new ones. cancel() may be called from any thread: it ends run()
// within a poll interval (200 ms) or at once when the stream is open.
// Signals (emitted on the worker thread; connect them queued to GUI objects):
//   connected()       the first event arrived (token and run accepted)
//   failed(message)   the attach or the stream failed: explain_attach_failure()'s words
//   ended(message)    the stream ended without error (the server stopped, or cancel())
#pragma once

#include <grpcpp/grpcpp.h>

#include <QObject>
#include <QString>
#include <atomic>
#include <memory>
#include <mutex>

#include "attach_settings.h"
#include "run_event_buffer.h"

namespace dipaco::studio {

class RunWatcher : public QObject {
  Q_OBJECT

 public:
  RunWatcher(std::shared_ptr<grpc::Channel> channel, AttachSettings settings,
             std::shared_ptr<RunEventBuffer> buffer, int connect_timeout_ms = 10000);

  void run();
  void cancel();
  // Events pushed so far (any thread).
  uint64_t received() const { return received_.load(); }

 signals:
  void connected();
  void failed(const QString& message);
  void ended(const QString& message);

 private:
  // True once the channel is READY; false on failure, timeout or cancel.
  bool wait_for_connection();

  std::shared_ptr<grpc::Channel> channel_;
  AttachSettings settings_;
  std::shared_ptr<RunEventBuffer> buffer_;
  int connect_timeout_ms_;
  std::atomic<bool> cancelled_{false};
  std::atomic<uint64_t> received_{0};
  std::mutex context_mutex_;
  grpc::ClientContext* context_ = nullptr;  // the open stream's, while run() reads it
};

}  // namespace dipaco::studio
