#include "command_chain.h"

#include <QProcess>

#include "data_commands.h"

namespace dipaco::studio {

CommandChain::CommandChain(QObject* parent) : QObject(parent) {}

CommandChain::~CommandChain() {
  if (process_ != nullptr) {
    process_->disconnect(this);
    process_->kill();
    process_->waitForFinished(5000);
  }
}

bool CommandChain::start(const QString& program, const QList<QStringList>& commands) {
  if (running() || commands.isEmpty()) return false;
  program_ = program;
  commands_ = commands;
  index_ = 0;
  cancelled_ = false;
  start_next();
  return true;
}

void CommandChain::cancel() {
  if (process_ == nullptr) return;
  cancelled_ = true;
  process_->kill();
}

void CommandChain::start_next() {
  const QStringList& arguments = commands_[index_];
  emit step(index_, shell_line(program_, arguments));
  last_line_.clear();
  pending_.clear();
  process_ = new QProcess(this);
  process_->setProcessChannelMode(QProcess::MergedChannels);
  connect(process_, &QProcess::readyRead, this, &CommandChain::read_output);
  connect(process_, &QProcess::finished, this, [this](int code, QProcess::ExitStatus status) {
    read_output();
    if (!pending_.isEmpty()) {
      last_line_ = QString::fromUtf8(pending_).trimmed();
      emit output(last_line_);
      pending_.clear();
    }
    const QString line = shell_line(program_, commands_[index_]);
    process_->deleteLater();
    process_ = nullptr;
    if (cancelled_) {
      emit finished(false, tr("cancelled during: %1").arg(line));
    } else if (status != QProcess::NormalExit || code != 0) {
      emit finished(false, tr("failed (exit %1): %2\n%3").arg(code).arg(line, last_line_));
    } else if (++index_ < commands_.size()) {
      start_next();
    } else {
      emit finished(true, tr("done: %1 commands").arg(commands_.size()));
    }
  });
  connect(process_, &QProcess::errorOccurred, this, [this](QProcess::ProcessError error) {
    if (error != QProcess::FailedToStart) return;
    process_->deleteLater();
    process_ = nullptr;
    emit finished(false, tr("cannot run %1: is dipaco installed (next to the studio, or on "
                            "PATH)?")
                             .arg(program_));
  });
  process_->start(program_, arguments);
}

void CommandChain::read_output() {
  if (process_ == nullptr) return;
  pending_ += process_->readAll();
  // A progress bar on a terminal redraws with \r; treat it as a line end too.
  pending_.replace('\r', '\n');
  qsizetype end = pending_.lastIndexOf('\n');
  if (end < 0) return;
  const QList<QByteArray> lines = pending_.left(end).split('\n');
  pending_ = pending_.mid(end + 1);
  for (const QByteArray& raw : lines) {
    const QString line = QString::fromUtf8(raw).remove(QStringLiteral("\x1b[K")).trimmed();
    if (line.isEmpty()) continue;
    last_line_ = line;
    emit output(line);
  }
}

}  // namespace dipaco::studio
