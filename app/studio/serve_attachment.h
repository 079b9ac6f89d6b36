// ServeAttachment: the studio attached to a running `dipaco serve`. attach() makes the channel
// (TLS with the CA file, or plaintext), starts a RunWatcher on its own QThread feeding the
// dashboard's event buffer, and points control() (operator RPCs) at the server. Nothing here
// blocks the GUI thread: connecting, the stream and its errors all happen on the watcher's
// thread and come back as signals. detach() cancels the stream and lets the thread finish on
// its own; the destructor waits for it.
#pragma once

#include <QObject>
#include <QString>
#include <memory>

#include "attach_settings.h"
#include "remote_run_control.h"
#include "run_event_buffer.h"

class QThread;

namespace dipaco::studio {

class RunWatcher;

class ServeAttachment : public QObject {
  Q_OBJECT

 public:
  explicit ServeAttachment(QObject* parent = nullptr);
  ~ServeAttachment() override;

  // False with *error when the channel cannot be made (an unreadable CA file, no address) or
  // an attachment is active (detach first).
  bool attach(const AttachSettings& settings, std::shared_ptr<RunEventBuffer> buffer,
              QString* error, int connect_timeout_ms = 10000);
  void detach();
  // Between attach() and failed/ended.
  bool active() const { return watcher_ != nullptr; }
  // Between connected and failed/ended/detach.
  bool watching() const { return watching_; }
  RunControl* control() { return &control_; }
  const AttachSettings& settings() const { return settings_; }

 signals:
  void connected();
  void failed(const QString& message);
  void ended(const QString& message);

 private:
  void finish();

  AttachSettings settings_;
  RemoteRunControl control_;
  RunWatcher* watcher_ = nullptr;
  QThread* thread_ = nullptr;
  bool watching_ = false;
};

}  // namespace dipaco::studio
