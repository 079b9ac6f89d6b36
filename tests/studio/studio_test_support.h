// Helpers for the studio tests: where screenshots go, and writing one.
#pragma once

#include <QApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QString>
#include <QWidget>
#include <QtTest>

namespace studio_test {

// $DIPACO_BINARY_DIR/studio-screenshots (ctest sets it), else ./studio-screenshots.
inline QString screenshot_dir() {
  QString base = qEnvironmentVariable("DIPACO_BINARY_DIR");
  if (base.isEmpty()) base = QDir::currentPath();
  const QString dir = base + QStringLiteral("/studio-screenshots");
  QDir().mkpath(dir);
  return dir;
}

// Shows `w` at width×height, lets it lay out and paint, saves it as <name>.png; returns the path
// (empty when saving failed).
inline QString write_screenshot(QWidget* w, const QString& name, int width = 1280,
                                int height = 860) {
  w->resize(width, height);
  w->show();
  QApplication::processEvents();
  QTest::qWait(120);
  const QString path = screenshot_dir() + QLatin1Char('/') + name + QStringLiteral(".png");
  return w->grab().save(path) ? path : QString();
}

// Writes a fixture file, creating its folder; fails the calling test function's QVERIFY when
// the file cannot be written.
inline void write_file(const QString& path, const QByteArray& bytes) {
  QDir().mkpath(QFileInfo(path).path());
  QFile f(path);
  QVERIFY(f.open(QIODevice::WriteOnly));
  QCOMPARE(f.write(bytes), bytes.size());
}

// Keeps the tests' QSettings away from a user's.
inline void isolate_settings() {
  QCoreApplication::setOrganizationName(QStringLiteral("dipaco-tests"));
  QCoreApplication::setApplicationName(QStringLiteral("dipaco-studio-tests"));
}

}  // namespace studio_test
