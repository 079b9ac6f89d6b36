// Data panel: the `dipaco data` commands it runs (Brown through the npm package, or files), the
// command chain's output and errors, routing.json read into one bar per path with the right
// token counts, and the routing stage planned for a designed grid on a worker thread.
// Screenshot: studio-screenshots/data.png.
#include <qcustomplot.h>

#include <QDir>
#include <QFile>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>
#include <string>
#include <vector>

#include "algo/grid_spec.h"
#include "data/token_file.h"
#include "data_commands.h"
#include "data_panel.h"
#include "routing_summary.h"
#include "studio_test_support.h"
#include "test_support.h"
#include "threaded_job.h"

using dipaco::studio::DataPanel;
using dipaco::studio::DataPrepSettings;

namespace {

// A 2 x 1 grid (two paths) over the tiny token files in `dir`, `shards` shards per path.
std::string grid_toml(const QTemporaryDir& dir, int shards) {
  const auto path = [&](const char* name) {
    return dir.filePath(QString::fromLatin1(name)).toStdString();
  };
  return "[run]\nname = \"studio-data\"\ndir = \"" + path("runs/plan") +
         "\"\nouter_steps = 1\ninner_steps = 2\nworkers = 1\nthreads = 1\n"
         "[model]\nd_model = 32\nn_layers = 2\nn_heads = 2\nd_ff = 64\nmax_seq_len = 32\n"
         "[inner]\nbatch_size = 2\nseq_len = 32\n"
         "[grid]\nshards_per_path = " +
         std::to_string(shards) +
         "\n[[grid.level]]\nblocks = [0, 0]\nmodules = 2\n"
         "[[grid.level]]\nblocks = [1, 1]\nmodules = 1\n"
         "[routing]\nbase_steps = 2\nprefix_tokens = 8\n"
         "[data]\ntrain = \"" +
         path("train.tok") + "\"\nval = \"" + path("val.tok") + "\"\n";
}

std::vector<std::vector<uint32_t>> documents(int count, uint32_t salt) {
  std::vector<std::vector<uint32_t>> docs;
  for (int d = 0; d < count; ++d) {
    std::vector<uint32_t> doc;
    const uint32_t base = d % 2 == 0 ? 2 : 33;
    for (uint32_t i = 0; i < 48; ++i)
      doc.push_back(base + (static_cast<uint32_t>(d) + salt + 3 * i) % 30);
    docs.push_back(doc);
  }
  return docs;
}

// routing.json as the routing stage writes it: shard s has 1000 * (s + 1) tokens.
QByteArray routing_json(int shards, int paths) {
  QByteArray j = "{\"format\": \"dipaco-routing/1\", \"method\": \"kmeans\", \"clusters\": " +
                 QByteArray::number(paths) + ", \"top2\": false,\n \"shards\": [";
  for (int s = 0; s < shards; ++s) {
    j += (s ? ", " : "") + QStringLiteral("{\"id\": %1, \"documents\": %2, \"tokens\": %3}")
                               .arg(s)
                               .arg(10 + s)
                               .arg(1000 * (s + 1))
                               .toUtf8();
  }
  j += "],\n \"val\": [";
  for (int p = 0; p < paths; ++p) {
    j += (p ? ", " : "") + QStringLiteral("{\"path\": %1, \"documents\": 1, \"tokens\": %2}")
                               .arg(p)
                               .arg(300 + p)
                               .toUtf8();
  }
  j += "],\n \"train_assignment\": [[0], [1]]}\n";
  return j;
}

QCPBars* bars(QCustomPlot* plot, int index) {
  return qobject_cast<QCPBars*>(plot->plottable(index));
}

}  // namespace

class StudioDataTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { studio_test::isolate_settings(); }

  void commandsForBrownAndFiles() {
    DataPrepSettings brown;
    QString error;
    auto commands = dipaco::studio::data_prep_commands(brown, &error);
    QCOMPARE(commands.size(), 3);
    QCOMPARE(dipaco::studio::shell_line(QStringLiteral("dipaco"), commands[0]),
             QStringLiteral("dipaco data fetch brown --out data/brown"));
    QCOMPARE(dipaco::studio::shell_line(QStringLiteral("dipaco"), commands[1]),
             QStringLiteral("dipaco data tokenizer --corpus data/brown/documents.jsonl --out "
                            "data/brown/tokenizer.model --vocab-size 8192 --model-type bpe"));
    QCOMPARE(dipaco::studio::shell_line(QStringLiteral("dipaco"), commands[2]),
             QStringLiteral("dipaco data tokenize --corpus data/brown/documents.jsonl "
                            "--tokenizer data/brown/tokenizer.model --out data/brown/tokens "
                            "--val-fraction 0.05 --seed 0"));
    const auto out = dipaco::studio::data_prep_outputs(brown);
    QCOMPARE(out.train_tokens, QStringLiteral("data/brown/tokens/train.tok"));

    DataPrepSettings files;
    files.brown = false;
    files.files = QStringLiteral("/home/me/my corpus.jsonl.gz");
    files.out_dir = QStringLiteral("data/mine");
    files.load_tokenizer = QStringLiteral("data/brown/tokenizer.model");
    commands = dipaco::studio::data_prep_commands(files, &error);
    QCOMPARE(commands.size(), 2);  // nothing to fetch
    const QString tokenizer = dipaco::studio::shell_line(QStringLiteral("dipaco"), commands[0]);
    QVERIFY2(tokenizer.contains(QStringLiteral("--corpus '/home/me/my corpus.jsonl.gz'")),
             qPrintable(tokenizer));
    QVERIFY(tokenizer.contains(QStringLiteral("--load data/brown/tokenizer.model")));
    QVERIFY(!tokenizer.contains(QStringLiteral("--vocab-size")));

    files.files.clear();
    QVERIFY(dipaco::studio::data_prep_commands(files, &error).isEmpty());
    QVERIFY(error.contains(QStringLiteral("no corpus files")));
  }

  void prepareRunsTheCommandsAndShowsTheirOutput() {
    DataPanel panel;
    panel.set_cli(QStringLiteral("/bin/echo"));  // prints each command's arguments
    QSignalSpy prepared(&panel, &DataPanel::prepared);
    QString error;
    QVERIFY2(panel.prepare(&error), qPrintable(error));
    QVERIFY(panel.preparing());
    QTRY_COMPARE_WITH_TIMEOUT(prepared.count(), 1, 10000);
    QVERIFY(prepared.first().at(0).toBool());
    QVERIFY(panel.log_text().contains(QStringLiteral("data fetch brown --out data/brown")));
    QVERIFY(panel.log_text().contains(QStringLiteral("data tokenize --corpus")));

    panel.set_cli(QStringLiteral("/bin/false"));
    QVERIFY(panel.prepare(&error));
    QTRY_COMPARE_WITH_TIMEOUT(prepared.count(), 2, 10000);
    QVERIFY(!prepared.last().at(0).toBool());
    QVERIFY2(panel.status_text().contains(QStringLiteral("failed (exit 1)")),
             qPrintable(panel.status_text()));

    panel.set_cli(QStringLiteral("/nonexistent/dipaco"));
    QVERIFY(panel.prepare(&error));
    QTRY_COMPARE_WITH_TIMEOUT(prepared.count(), 3, 10000);
    QVERIFY2(panel.status_text().contains(QStringLiteral("is dipaco installed")),
             qPrintable(panel.status_text()));
  }

  void prepareWithTheRealCliMakesTokenFiles() {
    DIPACO_SKIP_IF_CLI_CANNOT_LOAD_SENTENCEPIECE();
    QTemporaryDir dir;
    // 120 blank-line separated documents of 30 words from a small vocabulary.
    const char* words[] = {"the", "jury",   "said", "election", "county", "court", "was",    "of",
                           "a",   "report", "city", "vote",     "mayor",  "grand", "friday", "new"};
    QByteArray corpus;
    for (int d = 0; d < 120; ++d) {
      for (int w = 0; w < 30; ++w) corpus += QByteArray(w ? " " : "") + words[(d * 7 + w * w) % 16];
      corpus += ".\n\n";
    }
    studio_test::write_file(dir.filePath(QStringLiteral("corpus.txt")), corpus);
    DataPanel panel;
    panel.set_cli(QStringLiteral(DIPACO_CLI_PATH));
    DataPrepSettings s;
    s.brown = false;
    s.files = dir.filePath(QStringLiteral("corpus.txt"));
    s.out_dir = dir.filePath(QStringLiteral("data/mine"));  // made by the panel
    s.vocab_size = 300;
    s.val_fraction = 0.1;
    panel.set_settings(s);
    QSignalSpy prepared(&panel, &DataPanel::prepared);
    QString error;
    QVERIFY2(panel.prepare(&error), qPrintable(error));
    QTRY_COMPARE_WITH_TIMEOUT(prepared.count(), 1, 60000);
    QVERIFY2(prepared.first().at(0).toBool(), qPrintable(panel.log_text()));
    const auto out = dipaco::studio::data_prep_outputs(s);
    auto train = dipaco::TokenFile::open(out.train_tokens.toStdString());
    QVERIFY2(train.is_ok(), train.status().message().c_str());
    QCOMPARE(train->vocab_size(), uint32_t{300});
    QCOMPARE(train->num_documents() +
                 dipaco::TokenFile::open(out.val_tokens.toStdString())->num_documents(),
             uint64_t{120});
    QVERIFY(QFile::exists(out.tokenizer));
  }

  void routingJsonGivesOneBarPerPath() {
    QTemporaryDir dir;
    const QString run = dir.filePath(QStringLiteral("run"));
    studio_test::write_file(run + QStringLiteral("/routing.json"),
                            routing_json(/*shards=*/6, /*paths=*/3));
    auto grid = dipaco::parse_grid_spec(grid_toml(dir, 2), "grid.toml");
    QVERIFY2(grid.is_ok(), grid.status().message().c_str());
    grid->levels[0].modules = 3;  // three paths of two shards
    studio_test::write_file(run + QStringLiteral("/grid.toml"),
                            QByteArray::fromStdString(grid->to_toml()));

    DataPanel panel;
    QString error;
    QVERIFY2(panel.load_run(run, &error), qPrintable(error));
    const auto& summary = panel.summary();
    QCOMPARE(summary.paths.size(), size_t{3});
    QCOMPARE(bars(panel.plot(), 0)->data()->size(), 3);
    // Path p holds shards 2p and 2p + 1: 1000 (2p + 1) + 1000 (2p + 2) tokens.
    for (int p = 0; p < 3; ++p) {
      const double expected = 1000.0 * (2 * p + 1) + 1000.0 * (2 * p + 2);
      QCOMPARE(bars(panel.plot(), 0)->data()->at(p)->key, double(p));
      QCOMPARE(bars(panel.plot(), 0)->data()->at(p)->value, expected);
      QCOMPARE(bars(panel.plot(), 1)->data()->at(p)->value, 300.0 + p);
      QCOMPARE(summary.paths[size_t(p)].train_documents, uint64_t(10 + 2 * p + 10 + 2 * p + 1));
    }
    QVERIFY(panel.status_text().contains(QStringLiteral("3 paths routed by kmeans")));
    QVERIFY(!studio_test::write_screenshot(&panel, QStringLiteral("data")).isEmpty());
  }

  void routingErrorsSayWhatToDo() {
    QTemporaryDir dir;
    DataPanel panel;
    QString error;
    QVERIFY(!panel.load_run(dir.path(), &error));
    QVERIFY2(error.contains(QStringLiteral("has not routed")), qPrintable(error));
    QVERIFY(panel.status_text().contains(QStringLiteral("has not routed")));
    auto bad = dipaco::studio::parse_routing_json(routing_json(5, 2), 2, QStringLiteral("r.json"));
    QVERIFY(!bad.is_ok());
    QVERIFY2(QString::fromStdString(bad.status().message())
                 .contains(QStringLiteral("do not split into paths of 2")),
             bad.status().message().c_str());
    QVERIFY(!dipaco::studio::parse_routing_json("{}", 1, QStringLiteral("r.json")).is_ok());
    QCOMPARE(dipaco::studio::progress_percent(
                 QStringLiteral("features: 120/480 docs (25%), 3.1k docs/s, ETA 0:01")),
             25);
    QCOMPARE(dipaco::studio::progress_percent(QStringLiteral("base model: 2 steps")), -1);
  }

  void plansTheDesignedGridOnAWorkerThread() {
    QTemporaryDir dir;
    QVERIFY(dipaco::write_token_file(dir.filePath(QStringLiteral("train.tok")).toStdString(), 64,
                                     documents(40, 0)));
    QVERIFY(dipaco::write_token_file(dir.filePath(QStringLiteral("val.tok")).toStdString(), 64,
                                     documents(10, 1)));
    auto grid = dipaco::parse_grid_spec(grid_toml(dir, 2), "grid.toml");
    QVERIFY2(grid.is_ok(), grid.status().message().c_str());
    DataPanel panel;
    panel.set_grid_source([&](QString*) { return std::optional<dipaco::GridSpec>(*grid); });
    QSignalSpy planned(&panel, &DataPanel::planned);
    QString error;
    QVERIFY2(panel.plan(&error), qPrintable(error));
    QVERIFY(panel.planning());
    QVERIFY(!panel.plan(&error));  // one at a time
    QTRY_COMPARE_WITH_TIMEOUT(planned.count(), 1, 120000);
    QVERIFY2(planned.first().at(0).toBool(), qPrintable(planned.first().at(1).toString()));
    QVERIFY(QFile::exists(dir.filePath(QStringLiteral("runs/plan/routing.json"))));
    QCOMPARE(panel.summary().paths.size(), size_t{2});
    QCOMPARE(bars(panel.plot(), 0)->data()->size(), 2);
    // Every training token lands in exactly one shard (no top-2 overlap).
    QCOMPARE(panel.summary().train_tokens(), uint64_t{40 * 48});
    for (const auto& p : panel.summary().paths) QCOMPARE(p.shards.size(), size_t{2});
  }
};

QTEST_MAIN(StudioDataTest)
#include "test_studio_data.moc"
