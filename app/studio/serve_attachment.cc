#include "serve_attachment.h"

#include <QThread>

#include "attach_channel.h"
#include "run_watcher.h"

namespace dipaco::studio {

ServeAttachment::ServeAttachment(QObject* parent) : QObject(parent) {}

ServeAttachment::~ServeAttachment() {
  if (watcher_ != nullptr) watcher_->cancel();
  if (thread_ != nullptr) {
    thread_->wait();
    delete thread_;
  }
  // Watchers are children of this object: deleted after this.
}

bool ServeAttachment::attach(const AttachSettings& settings, std::shared_ptr<RunEventBuffer> buffer,
                             QString* error, int connect_timeout_ms) {
  if (active()) {
    *error =
        tr("already attached to %1: detach first").arg(QString::fromStdString(settings_.address));
    return false;
  }
  if (settings.address.empty()) {
    *error = tr("no address: give host:port of dipaco serve (it prints \"listening on ...\")");
    return false;
  }
  if (settings.token.empty()) {
    *error =
        tr("no token: give the operator token (the file given to dipaco serve "
           "--operator-token-file)");
    return false;
  }
  auto channel = attach_channel(settings);
  if (!channel.is_ok()) {
    *error = tr("cannot reach %1: %2")
                 .arg(QString::fromStdString(settings.address),
                      QString::fromStdString(channel.status().message()));
    return false;
  }
  if (thread_ != nullptr) {  // an earlier attachment's thread, already ending
    thread_->wait();
    delete thread_;
    thread_ = nullptr;
  }
  settings_ = settings;
  watching_ = false;
  control_.attach(*channel, settings);
  watcher_ = new RunWatcher(*channel, settings, std::move(buffer), connect_timeout_ms);
  watcher_->setParent(this);
  RunWatcher* watcher = watcher_;
  // The watcher lives on the GUI thread; its signals, emitted on the worker, arrive queued.
  connect(watcher, &RunWatcher::connected, this, [this, watcher] {
    if (watcher != watcher_) return;
    watching_ = true;
    emit connected();
  });
  connect(watcher, &RunWatcher::failed, this, [this, watcher](const QString& message) {
    if (watcher != watcher_) return;
    finish();
    emit failed(message);
  });
  connect(watcher, &RunWatcher::ended, this, [this, watcher](const QString& message) {
    if (watcher != watcher_) return;
    finish();
    emit ended(message);
  });
  thread_ = QThread::create([watcher] { watcher->run(); });
  thread_->setObjectName(QStringLiteral("dipaco-watch"));
  thread_->start();
  return true;
}

void ServeAttachment::detach() {
  if (watcher_ == nullptr) return;
  watcher_->cancel();
  finish();
  emit ended(tr("detached from %1").arg(QString::fromStdString(settings_.address)));
}

void ServeAttachment::finish() {
  control_.detach();
  watching_ = false;
  RunWatcher* watcher = watcher_;
  watcher_ = nullptr;
  if (watcher == nullptr) return;
  // The thread may still be inside run(): delete the watcher once it is done.
  if (thread_ != nullptr && thread_->isRunning()) {
    connect(thread_, &QThread::finished, watcher, &QObject::deleteLater);
  } else {
    watcher->deleteLater();
  }
}

}  // namespace dipaco::studio
