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

  // A run id names another run once the coordinator's database is replaced: the cache must not
  // hand the new run the old one's shard and optimizer state.
  void claimRemovesFilesOfAnotherRunConfig() {
    QTemporaryDir dir;
    const std::string cache = dir.path().toStdString();
    const fs::path root(cache);
    const fs::path state = dipaco::run_state_dir(cache, "1") / "path-0-shard-0.safetensors";
    // Files an older worker kept, without a record: adopted, nothing removed.
    QVERIFY(put(root / "shards" / "run-1.shard-0"));
    QVERIFY(put(state));
    QVERIFY(put(root / "shards" / "run-2.shard-0"));
    auto first = dipaco::claim_run_files(cache, "1", "aaaa");
    QVERIFY2(first.is_ok(), first.status().message().c_str());
    QVERIFY(!first->replaced);
    QCOMPARE(first->removed.files, uint64_t{0});
    QVERIFY(fs::exists(root / "shards" / "run-1.shard-0"));
    QVERIFY(fs::exists(state));

    // The same config again: nothing changes.
    auto same = dipaco::claim_run_files(cache, "1", "aaaa");
    QVERIFY(same.is_ok() && !same->replaced);
    QVERIFY(fs::exists(state));

    // Another config under the same id: run 1's shard, state and record go, run 2's stay.
    auto other = dipaco::claim_run_files(cache, "1", "bbbb");
    QVERIFY(other.is_ok());
    QVERIFY(other->replaced);
    QCOMPARE(other->previous_config_sha256, std::string("aaaa"));
    QCOMPARE(other->removed.files, uint64_t{3});  // shard, state, the old record
    QVERIFY(!fs::exists(root / "shards" / "run-1.shard-0"));
    QVERIFY(!fs::exists(state));
    QVERIFY(fs::exists(root / "shards" / "run-2.shard-0"));
    auto again = dipaco::claim_run_files(cache, "1", "bbbb");
    QVERIFY(again.is_ok() && !again->replaced);

    // The record alone names the run, and removing the run removes it.
    QCOMPARE(dipaco::runs_in_cache(cache), (std::set<std::string>{"1", "2"}));
    QCOMPARE(dipaco::remove_run_files(cache, "1").files, uint64_t{1});
    QCOMPARE(dipaco::runs_in_cache(cache), (std::set<std::string>{"2"}));
  }

  void claimFailsClearlyWhenTheCacheIsNotWritable() {
    QTemporaryDir dir;
    const fs::path blocker = fs::path(dir.path().toStdString()) / "runs";
    QVERIFY(put(blocker));  // a file where the record's directory belongs
    auto claimed = dipaco::claim_run_files(dir.path().toStdString(), "1", "aaaa");
    QVERIFY(!claimed.is_ok());
    QVERIFY2(claimed.status().message().find("runs") != std::string::npos,
             claimed.status().message().c_str());
  }
};

QTEST_GUILESS_MAIN(RunCacheFilesTest)
#include "test_run_cache_files.moc"
