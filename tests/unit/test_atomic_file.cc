#include <QTemporaryDir>
#include <QtTest>
#include <filesystem>

#include "util/atomic_file.h"

class AtomicFileTest : public QObject {
  Q_OBJECT

 private slots:
  void commitReplacesContents() {
    QTemporaryDir dir;
    std::string path = dir.filePath("state.bin").toStdString();
    QVERIFY(dipaco::write_file_atomically(path, "old"));
    QVERIFY(dipaco::write_file_atomically(path, "new contents"));
    auto read = dipaco::read_file(path);
    QVERIFY(read.is_ok());
    QCOMPARE(*read, std::string("new contents"));
    QCOMPARE(entries(dir.path()), size_t{1});  // no temp file left behind
  }

  void abandonedWriterLeavesOldContentsAndNoTempFile() {
    QTemporaryDir dir;
    std::string path = dir.filePath("state.bin").toStdString();
    QVERIFY(dipaco::write_file_atomically(path, "old"));
    {
      auto file = dipaco::AtomicFile::create(path);
      QVERIFY(file.is_ok());
      QVERIFY(file->write("half of the new"));
      QCOMPARE(entries(dir.path()), size_t{2});
      // destroyed without commit(), as when an error returns early
    }
    QCOMPARE(*dipaco::read_file(path), std::string("old"));
    QCOMPARE(entries(dir.path()), size_t{1});
  }

  void missingDirectoryIsAClearError() {
    auto file = dipaco::AtomicFile::create("/nonexistent-dir-for-dipaco/x.bin");
    QVERIFY(!file.is_ok());
    QVERIFY2(file.status().message().find("/nonexistent-dir-for-dipaco/x.bin") != std::string::npos,
             file.status().message().c_str());
    auto read = dipaco::read_file("/nonexistent-dir-for-dipaco/x.bin");
    QVERIFY(!read.is_ok());
    QCOMPARE(read.status().code(), dipaco::StatusCode::kNotFound);
  }

 private:
  static size_t entries(const QString& dir) {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.toStdString()))
      ++n;
    return n;
  }
};

QTEST_GUILESS_MAIN(AtomicFileTest)
#include "test_atomic_file.moc"
