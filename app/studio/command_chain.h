// CommandChain: runs commands one after another as child processes (QProcess, so the GUI never
// waits), merging their stdout and stderr into output lines; the first that fails ends the chain
// with a message naming it and its exit code (its last output line says why).
#pragma once

#include <QList>
#include <QObject>
#include <QString>
#include <QStringList>

class QProcess;

namespace dipaco::studio {

class CommandChain : public QObject {
  Q_OBJECT

 public:
  explicit CommandChain(QObject* parent = nullptr);
  // Kills a command still running.
  ~CommandChain() override;

  // False (nothing started) while a chain runs or when `commands` is empty.
  bool start(const QString& program, const QList<QStringList>& commands);
  void cancel();
  bool running() const { return process_ != nullptr; }

 signals:
  // A command starts (index from 0, its shell line).
  void step(int index, const QString& line);
  void output(const QString& line);
  void finished(bool ok, const QString& message);

 private:
  void start_next();
  void read_output();

  QString program_;
  QList<QStringList> commands_;
  int index_ = 0;
  QProcess* process_ = nullptr;
  QString last_line_;
  QByteArray pending_;
  bool cancelled_ = false;
};

}  // namespace dipaco::studio
