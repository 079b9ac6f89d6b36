// run_cache_files.h: which runs have files in a worker's cache, and deleting one run's files
// without touching another's (run 1 and run 12 share a prefix).
#include <QTemporaryDir>
#include <QtTest>
#include <filesystem>
#include <set>
#include <string>

#include "run_cache_files.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace {

bool put(const fs::path& path, const std::string& bytes = "12345") {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  return !ec && dipaco::write_file_atomically(path.string(), bytes).is_ok();
}

}  // namespace

class RunCacheFilesTest : public QObject {
  Q_OBJECT

 private slots:
  void listsAndRemovesOneRunsFiles() {
    QTemporaryDir dir;
    const std::string cache = dir.path().toStdString();
    const fs::path root(cache);
    QCOMPARE(dipaco::run_state_dir(cache, "1"), root / "state" / "run-1");
    QVERIFY(dipaco::runs_in_cache(cache).empty());  // no folders yet

    QVERIFY(put(root / "modules" / "run-1.module-0.v-2"));
    QVERIFY(put(root / "modules" / "run-1.module-3.delta-v-3.part"));
    QVERIFY(put(root / "shards" / "run-1.shard-10"));
    QVERIFY(put(dipaco::run_state_dir(cache, "1") / "path-0-shard-10.safetensors", "1234567"));
    QVERIFY(put(root / "modules" / "run-12.module-0.v-0"));
    QVERIFY(put(root / "shards" / "run-3.shard-1.part"));
    QVERIFY(put(dipaco::run_state_dir(cache, "4") / "path-1-shard-2.safetensors"));
    QVERIFY(put(root / "modules" / "notes.txt"));         // not a run's file
    QVERIFY(put(root / "modules" / "run-5.checkpoint"));  // not a cache file name
    QCOMPARE(dipaco::runs_in_cache(cache), (std::set<std::string>{"1", "12", "3", "4"}));

    const dipaco::RemovedRunFiles removed = dipaco::remove_run_files(cache, "1");
    QCOMPARE(removed.files, uint64_t{4});
    QCOMPARE(removed.bytes, uint64_t{3 * 5 + 7});
    QVERIFY(!fs::exists(dipaco::run_state_dir(cache, "1")));
    QCOMPARE(dipaco::runs_in_cache(cache), (std::set<std::string>{"12", "3", "4"}));
    QVERIFY(fs::exists(root / "modules" / "run-12.module-0.v-0"));
    QVERIFY(fs::exists(root / "modules" / "notes.txt"));
    QVERIFY(fs::exists(root / "modules" / "run-5.checkpoint"));

    // A run with nothing cached, and the empty id, remove nothing.
    QCOMPARE(dipaco::remove_run_files(cache, "7").files, uint64_t{0});
    QCOMPARE(dipaco::remove_run_files(cache, "").files, uint64_t{0});
    QCOMPARE(dipaco::runs_in_cache(cache).size(), size_t{3});
  }
};

QTEST_GUILESS_MAIN(RunCacheFilesTest)
#include "test_run_cache_files.moc"
