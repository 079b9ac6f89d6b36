#include <QTemporaryDir>
#include <QtTest>
#include <random>
#include <set>

#include "data/batch_loader.h"
#include "data/token_file.h"

using dipaco::BatchLoader;

namespace {

// Token id i + 1 at stream position i of the file: every window's first token names where it
// came from, so repeats and gaps are visible.
std::vector<std::vector<uint32_t>> numbered_documents(const std::vector<size_t>& lengths,
                                                      uint32_t* next_id) {
  std::vector<std::vector<uint32_t>> docs;
  for (size_t length : lengths) {
    std::vector<uint32_t> doc(length);
    for (auto& id : doc) id = (*next_id)++;
    docs.push_back(doc);
  }
  return docs;
}

struct Batch {
  std::vector<int32_t> inputs, targets;
  bool operator==(const Batch& o) const { return inputs == o.inputs && targets == o.targets; }
};

Batch next(BatchLoader& loader) {
  Batch b;
  size_t n = static_cast<size_t>(loader.batch()) * static_cast<size_t>(loader.seq_len());
  b.inputs.resize(n);
  b.targets.resize(n);
  loader.next_batch(b.inputs.data(), b.targets.data());
  return b;
}

}  // namespace

class BatchLoaderTest : public QObject {
  Q_OBJECT

 private slots:
  void init() {
    uint32_t id = 1;
    std::mt19937 rng(3);
    std::vector<size_t> lengths;
    for (int d = 0; d < 37; ++d) lengths.push_back(1 + rng() % 90);
    QVERIFY(dir_.isValid());
    path_ = dir_.filePath("t.tok").toStdString();
    QVERIFY(dipaco::write_token_file(path_, 70000, numbered_documents(lengths, &id)));
    auto file = dipaco::TokenFile::open(path_);
    QVERIFY2(file.is_ok(), file.status().message().c_str());
    file_ = std::move(file).value();
  }

  // Every window of an epoch is drawn exactly once, and the windows tile the shuffled stream:
  // targets are inputs shifted by one, and consecutive windows overlap by exactly one token.
  void epochHasNoRepeatsAndNoGaps() {
    const int B = 3, T = 16;
    auto loader = BatchLoader::create(&file_, {}, B, T, 99);
    QVERIFY2(loader.is_ok(), loader.status().message().c_str());
    const uint64_t windows = loader->windows_per_epoch();
    QCOMPARE(windows, (file_.num_tokens() - 1) / T);
    QCOMPARE(loader->tokens_per_epoch(), windows * T);
    std::vector<std::vector<int32_t>> epoch_windows;
    while (epoch_windows.size() < 2 * windows + 5) {  // two epochs and a bit
      Batch b = next(*loader);
      for (int r = 0; r < B; ++r) {
        std::vector<int32_t> w(b.inputs.begin() + r * T, b.inputs.begin() + (r + 1) * T);
        for (int t = 0; t + 1 < T; ++t) QCOMPARE(b.targets[r * T + t], w[t + 1]);
        w.push_back(b.targets[r * T + T - 1]);
        epoch_windows.push_back(w);
      }
    }
    for (int epoch = 0; epoch < 2; ++epoch) {
      std::set<int32_t> tokens;
      size_t count = 0;
      for (uint64_t w = 0; w < windows; ++w) {
        const auto& window = epoch_windows[epoch * windows + w];
        if (w + 1 < windows) {  // consecutive windows share one token (stride T, length T+1)
          QCOMPARE(window.back(), epoch_windows[epoch * windows + w + 1].front());
        }
        for (size_t t = 0; t < static_cast<size_t>(T); ++t) {
          tokens.insert(window[t]);
          ++count;
        }
      }
      QCOMPARE(tokens.size(), count);  // no token used twice as an input within the epoch
      QCOMPARE(count, static_cast<size_t>(windows * T));
    }
    // The second epoch is a different order.
    QVERIFY(epoch_windows[0] != epoch_windows[windows]);
  }

  void resumeIsExact() {
    const int B = 4, T = 8;
    std::vector<uint64_t> selection = {5, 0, 33, 7, 8, 9, 10, 11, 20, 21, 22, 30};
    std::mt19937 rng(17);
    for (int trial = 0; trial < 30; ++trial) {
      auto original = BatchLoader::create(&file_, selection, B, T, 1234);
      QVERIFY2(original.is_ok(), original.status().message().c_str());
      int stop = static_cast<int>(rng() % 200);
      for (int i = 0; i < stop; ++i) next(*original);
      std::string saved = original->serialize_position();
      auto parsed = BatchLoader::parse_position(saved);
      QVERIFY2(parsed.is_ok(), parsed.status().message().c_str());
      auto resumed = BatchLoader::create(&file_, selection, B, T, 1234);
      QVERIFY(resumed.is_ok());
      QVERIFY(resumed->restore(*parsed));
      for (int i = 0; i < 25; ++i) QVERIFY(next(*original) == next(*resumed));
      // restore(position()) directly, too.
      auto again = BatchLoader::create(&file_, selection, B, T, 1234);
      QVERIFY(again->restore(original->position()));
      QVERIFY(next(*original) == next(*again));
    }
  }

  void restoreRejectsOtherRuns() {
    auto loader = BatchLoader::create(&file_, {}, 2, 8, 1);
    next(*loader);
    auto p = loader->position();
    auto other_seed = BatchLoader::create(&file_, {}, 2, 8, 2);
    auto status = other_seed->restore(p);
    QVERIFY(!status);
    QVERIFY2(status.message().find("seed 1") != std::string::npos, status.message().c_str());
    auto other_shape = BatchLoader::create(&file_, {}, 2, 16, 1);
    QVERIFY(!other_shape->restore(p));
    auto other_selection = BatchLoader::create(&file_, {1, 2, 3, 4, 5, 6}, 2, 8, 1);
    QVERIFY(!other_selection->restore(p));
    QVERIFY(!BatchLoader::parse_position("garbage").is_ok());
    QVERIFY(!BatchLoader::parse_position("dipaco-loader-position/1 seed=1 epoch=x").is_ok());
  }

  void tooSmallShardIsAClearError() {
    uint32_t id = 1;
    std::string path = dir_.filePath("small.tok").toStdString();
    QVERIFY(dipaco::write_token_file(path, 100, numbered_documents({5, 7}, &id)));
    auto file = dipaco::TokenFile::open(path);
    auto loader = BatchLoader::create(&*file, {}, 1, 256, 0);
    QVERIFY(!loader.is_ok());
    QCOMPARE(loader.status().message(),
             std::string("shard has 12 tokens, needs at least 257 for seq_len 256"));
    QVERIFY(!BatchLoader::create(&*file, {2}, 1, 4, 0).is_ok());     // no document 2
    QVERIFY(!BatchLoader::create(&*file, {1, 1}, 1, 4, 0).is_ok());  // selected twice
    QVERIFY(BatchLoader::create(&*file, {}, 1, 11, 0).is_ok());      // exactly seq_len + 1
  }

 private:
  QTemporaryDir dir_;
  std::string path_;
  dipaco::TokenFile file_;
};

QTEST_GUILESS_MAIN(BatchLoaderTest)
#include "test_data_batch_loader.moc"
