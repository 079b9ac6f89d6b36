#include <QTemporaryDir>
#include <QtTest>
#include <filesystem>

#include "util/atomic_file.h"
#include "util/sha256.h"

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

  // std::ifstream opens a directory and reads it as an empty file: a directory given where a
  // config or data file was expected must be an error naming it, not an empty input.
  void directoryIsRefusedNotReadAsEmpty() {
    QTemporaryDir dir;
    const std::string path = dir.path().toStdString();
    auto read = dipaco::read_file(path);
    QVERIFY(!read.is_ok());
    QCOMPARE(read.status().code(), dipaco::StatusCode::kInvalidArgument);
    QCOMPARE(read.status().message(), path + ": is a directory, expected a file");
    auto hash = dipaco::sha256_file(path);
    QVERIFY(!hash.is_ok());
    QCOMPARE(hash.status().message(), path + ": is a directory, expected a file");
  }

  void streamsAndLargeFilesReadWhole() {
    auto empty = dipaco::read_file("/dev/null");  // a device reads as a stream, here empty
    QVERIFY2(empty.is_ok(), empty.status().message().c_str());
    QVERIFY(empty->empty());
    QTemporaryDir dir;
    const std::string path = dir.filePath("big.bin").toStdString();
    std::string bytes(200'003, '\0');  // several read() calls, with a NUL byte and a tail
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 % 251);
    QVERIFY(dipaco::write_file_atomically(path, bytes));
    auto read = dipaco::read_file(path);
    QVERIFY(read.is_ok());
    QVERIFY(*read == bytes);
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
