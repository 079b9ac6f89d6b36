// Runs the built dipaco binaries from tests and captures what they print.
#pragma once

#include <QProcess>
#include <QString>
#include <QStringList>

struct CliResult {
  int exit_code = -1;
  QString out;
  QString err;
};

inline CliResult run_program(const QString& program, const QStringList& args,
                             const QString& working_dir = QString(), int timeout_ms = 300000) {
  QProcess process;
  if (!working_dir.isEmpty()) process.setWorkingDirectory(working_dir);
  process.start(program, args);
  CliResult result;
  if (!process.waitForStarted(10000)) {
    result.err = "could not start " + program;
    return result;
  }
  process.waitForFinished(timeout_ms);
  result.exit_code = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
  result.out = QString::fromUtf8(process.readAllStandardOutput());
  result.err = QString::fromUtf8(process.readAllStandardError());
  return result;
}

#ifdef DIPACO_CLI_PATH
inline CliResult run_cli(const QStringList& args, const QString& working_dir = QString(),
                         int timeout_ms = 300000) {
  return run_program(QStringLiteral(DIPACO_CLI_PATH), args, working_dir, timeout_ms);
}
#endif
