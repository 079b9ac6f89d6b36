// Grid designer: estimates against hand-computed numbers, validation errors on the offending
// field, TOML open/save round trip with the CLI's format, screenshot.
#include <QCheckBox>
#include <QDir>
#include <QFile>
#include <QLabel>
#include <QLineEdit>
#include <QSpinBox>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QtTest>

#include "algo/grid_spec.h"
#include "data/token_file.h"
#include "error_key.h"
#include "grid_designer_panel.h"
#include "grid_estimates.h"
#include "studio_test_support.h"
#include "util/atomic_file.h"

using dipaco::GridLevel;
using dipaco::GridSpec;
using dipaco::studio::GridDesignerPanel;

namespace {

// vocab 64, d_model 32, 2 blocks, 2 heads, d_ff 64. By hand:
//   embedding 64·32 = 2048; a block: 32 + (2+2+2)·16·32 + 32·32 + 32 + 2·64·32 + 32·64 = 10304;
//   final norm 32 + head 64·32 = 2080; total 2048 + 2·10304 + 2080 = 24736.
//   level 0 module (embedding + block 0) = 12352; level 1 module (block 1 + head) = 12384.
GridSpec tiny_grid() {
  GridSpec g;
  g.name = "tiny";
  g.dir = "runs/tiny";
  g.vocab_from_data = false;
  g.model.vocab_size = 64;
  g.model.d_model = 32;
  g.model.n_layers = 2;
  g.model.n_heads = 2;
  g.model.n_kv_heads = 2;
  g.model.d_ff = 64;
  g.model.max_seq_len = 32;
  g.inner.batch_size = 2;
  g.inner.seq_len = 32;
  g.inner_steps = 2;
  g.outer_steps = 2;
  g.inner.steps = 4;
  g.inner.warmup_steps = 1;
  g.routing.prefix_tokens = 8;
  g.dtype = dipaco::WireDtype::kInt8;
  g.levels = {GridLevel{0, 0, 2, false}, GridLevel{1, 1, 2, false}};
  return g;
}

QSpinBox* spin(GridDesignerPanel& panel, const char* key) {
  return qobject_cast<QSpinBox*>(panel.field(QString::fromLatin1(key)));
}

}  // namespace

class StudioDesignerTest : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { studio_test::isolate_settings(); }

  void estimatesMatchHandComputedNumbers() {
    GridSpec g = tiny_grid();
    QVERIFY2(g.validate().is_ok(), g.validate().message().c_str());
    QCOMPARE(g.num_paths(), 4);
    const auto e = dipaco::studio::estimate_grid(g);
    QCOMPARE(e.params_per_path, uint64_t{24736});
    QCOMPARE(e.params_total, uint64_t{2 * 12352 + 2 * 12384});
    // int8: 4·ceil(n/2048) + n per module. 12352 -> 28 + 12352; 12384 -> 28 + 12384.
    QCOMPARE(e.bytes_up_per_outer_step, uint64_t{4 * (12380 + 12412)});
    QCOMPARE(e.bytes_down_per_outer_step, uint64_t{4 * 24736 * 4});
    QCOMPARE(e.bytes_per_outer_step, uint64_t{99168 + 395776});
    // Later steps fetch int8 deltas ([compression] downlink default): the uplink's size.
    QCOMPARE(e.bytes_down_delta_per_outer_step, uint64_t{4 * (12380 + 12412)});
    QCOMPARE(e.bytes_steady_per_outer_step, uint64_t{2 * 99168});
    // Data parallel: 4 tasks · H 2 · 2 directions · 24736 · 4 bytes.
    QCOMPARE(e.data_parallel_bytes_per_outer_step, uint64_t{4 * 2 * 2 * 24736 * 4});
    // Activations: 4 · B 2 · T 32 · (2 · (10·32 + 4·64 + 2·2·32) + 2·64) = 393216.
    QCOMPARE(e.activation_bytes, uint64_t{393216});
    QCOMPARE(e.worker_memory_bytes, uint64_t{24736 * 16 + 393216});
  }

  void pathSpecificModulesStayLocal() {
    GridSpec g = tiny_grid();
    g.levels = {GridLevel{0, 0, 2, false}, GridLevel{1, 1, 2, true}};
    QVERIFY2(g.validate().is_ok(), g.validate().message().c_str());
    QCOMPARE(g.num_paths(), 2);
    QCOMPARE(g.num_modules(), 4);
    const auto e = dipaco::studio::estimate_grid(g);
    QCOMPARE(e.params_total, uint64_t{2 * 12352 + 2 * 12384});
    QCOMPARE(e.bytes_up_per_outer_step, uint64_t{2 * 12380});
    QCOMPARE(e.bytes_down_per_outer_step, uint64_t{2 * 12352 * 4});
    // Path-specific: fetched and pushed whole in fp32, never through the run's int8 codec.
    QCOMPARE(e.path_local_bytes_per_outer_step, uint64_t{2 * (12384 * 4 + 12384 * 4)});
  }

  void errorKeysNameTheField() {
    using dipaco::studio::error_key;
    QCOMPARE(error_key("model.d_model 33 is not divisible by n_heads 2"),
             std::string("model.d_model"));
    QCOMPARE(error_key("grid.level[1].blocks starts at block 0, expected 1 (levels ...)"),
             std::string("grid.level[1].blocks"));
    QCOMPARE(error_key("grid.toml: run.outer_steps must be >= 1"), std::string("run.outer_steps"));
    QCOMPARE(error_key("/tmp/a b/grid.toml: inner.lr must be > 0"), std::string("inner.lr"));
    QCOMPARE(error_key("grid levels cover blocks 0..1 but the model has 3 blocks"),
             std::string("grid"));
    QCOMPARE(error_key("the grid has 5000 paths; at most 4096 are supported"), std::string("grid"));
    QCOMPARE(error_key("routing.method = \"product_kmeans\" needs ..."),
             std::string("routing.method"));
    QCOMPARE(error_key("something else entirely"), std::string());
    QCOMPARE(dipaco::studio::error_level("grid.level[3].modules"), 3);
    QCOMPARE(dipaco::studio::error_level("model.d_model"), -1);
  }

  void panelShowsEstimatesAndMarksTheOffendingField() {
    GridDesignerPanel panel;
    panel.set_spec(tiny_grid());
    QVERIFY2(panel.valid(), qPrintable(panel.error()));
    QCOMPARE(panel.estimates().params_per_path, uint64_t{24736});
    QVERIFY(panel.estimates_text().contains(QStringLiteral("24736")));

    // d_model 33 is not divisible by 2 heads: the d_model spin box is marked.
    spin(panel, "model.d_model")->setValue(33);
    QVERIFY(!panel.valid());
    QCOMPARE(panel.error_key(), QStringLiteral("model.d_model"));
    QCOMPARE(panel.error_widget(), panel.field(QStringLiteral("model.d_model")));
    QVERIFY(panel.error_widget()->styleSheet().contains(QStringLiteral("border")));
    QCOMPARE(panel.error_widget()->toolTip(), panel.error());
    QWidget* marked = panel.error_widget();
    spin(panel, "model.d_model")->setValue(32);
    QVERIFY(panel.valid());
    QVERIFY(marked->styleSheet().isEmpty());

    // A level that starts at the wrong block: that level's first-block cell is marked.
    auto* first = qobject_cast<QSpinBox*>(panel.levels_table()->cellWidget(1, 0));
    QVERIFY(first != nullptr);
    first->setValue(0);
    QVERIFY(!panel.valid());
    QCOMPARE(panel.error_key(), QStringLiteral("grid.level[1].blocks"));
    QCOMPARE(panel.error_widget(), static_cast<QWidget*>(first));
    first->setValue(1);
    QVERIFY(panel.valid());

    // Three blocks but the levels end at block 1: the whole levels table is marked.
    spin(panel, "model.n_layers")->setValue(3);
    QVERIFY(!panel.valid());
    QCOMPARE(panel.error_key(), QStringLiteral("grid"));
    QCOMPARE(panel.error_widget(), static_cast<QWidget*>(panel.levels_table()));
    // Extending the last level fixes it; a third level then changes the path count.
    qobject_cast<QSpinBox*>(panel.levels_table()->cellWidget(1, 1))->setValue(2);
    QVERIFY2(panel.valid(), qPrintable(panel.error()));
    QCOMPARE(panel.spec().num_paths(), 4);

    // Path-specific level: one module per path, the modules cell is disabled.
    auto* ps = qobject_cast<QCheckBox*>(panel.levels_table()->cellWidget(1, 3));
    ps->setChecked(true);
    QVERIFY2(panel.valid(), qPrintable(panel.error()));
    QCOMPARE(panel.spec().num_paths(), 2);
    QCOMPARE(panel.spec().levels[1].modules, 2);
    QVERIFY(!panel.levels_table()->cellWidget(1, 2)->isEnabled());
  }

  void savesAndOpensTheCliToml() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    GridDesignerPanel panel;
    panel.set_spec(tiny_grid());
    spin(panel, "run.inner_steps")->setValue(7);
    const QString path = dir.filePath(QStringLiteral("grid.toml"));
    QString error;
    QVERIFY2(panel.save_file(path, &error), qPrintable(error));
    auto loaded = dipaco::load_grid_spec(path.toStdString());
    QVERIFY2(loaded.is_ok(), loaded.status().message().c_str());
    QCOMPARE(loaded->inner_steps, 7u);
    QCOMPARE(loaded->to_toml(), panel.spec().to_toml());

    // A grid written by hand, as for `dipaco run`: only some keys, the rest defaults.
    const std::string hand =
        "[run]\nname = \"hand\"\nouter_steps = 5\ninner_steps = 20\n"
        "[model]\nd_model = 64\nn_layers = 4\nn_heads = 4\nd_ff = 128\n"
        "[grid]\nshards_per_path = 2\n"
        "[[grid.level]]\nblocks = [0, 1]\nmodules = 3\n"
        "[[grid.level]]\nblocks = [2, 3]\npath_specific = true\n"
        "[compression]\ndtype = \"int4\"\n";
    const QString hand_path = dir.filePath(QStringLiteral("hand.toml"));
    QVERIFY(dipaco::write_file_atomically(hand_path.toStdString(), hand).is_ok());
    GridDesignerPanel opened;
    QVERIFY2(opened.open_file(hand_path, &error), qPrintable(error));
    QVERIFY(opened.valid());
    QCOMPARE(spin(opened, "run.outer_steps")->value(), 5);
    QCOMPARE(spin(opened, "grid.shards_per_path")->value(), 2);
    QCOMPARE(opened.levels_table()->rowCount(), 2);
    QCOMPARE(opened.spec().num_paths(), 3);
    QCOMPARE(opened.spec().dtype, dipaco::WireDtype::kInt4);
    QCOMPARE(opened.spec().to_toml(), dipaco::load_grid_spec(hand_path.toStdString())->to_toml());

    // A broken file: the error names the file and the key; the panel keeps its grid.
    QVERIFY(dipaco::write_file_atomically(dir.filePath(QStringLiteral("bad.toml")).toStdString(),
                                          "[run]\nouter_steps = 0\n")
                .is_ok());
    QVERIFY(!opened.open_file(dir.filePath(QStringLiteral("bad.toml")), &error));
    QVERIFY2(error.contains(QStringLiteral("run.outer_steps")), qPrintable(error));
    QCOMPARE(spin(opened, "run.outer_steps")->value(), 5);
    // An invalid grid is not saved.
    spin(opened, "model.n_heads")->setValue(3);
    QVERIFY(!opened.save_file(dir.filePath(QStringLiteral("no.toml")), &error));
    QVERIFY(!QFile::exists(dir.filePath(QStringLiteral("no.toml"))));
  }

  void vocabularyFromTheDataFeedsTheEstimates() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString tokens = dir.filePath(QStringLiteral("train.tok"));
    QVERIFY(dipaco::write_token_file(tokens.toStdString(), 64, {{1, 2, 3}, {4, 5, 6}}).is_ok());
    GridSpec g = tiny_grid();
    g.vocab_from_data = true;
    g.model.vocab_size = 8192;
    g.train_tokens = tokens.toStdString();
    GridDesignerPanel panel;
    panel.set_spec(g);
    QVERIFY2(panel.valid(), qPrintable(panel.error()));
    QCOMPARE(panel.estimates().params_per_path, uint64_t{24736});  // vocabulary 64, as above
    QVERIFY(panel.estimates_text().contains(QStringLiteral("vocabulary 64 from")));
    // Without the file: the default vocabulary, said so.
    qobject_cast<QLineEdit*>(panel.field(QStringLiteral("data.train")))
        ->setText(dir.filePath(QStringLiteral("missing.tok")));
    QVERIFY(panel.estimates_text().contains(QStringLiteral("not readable")));
    QVERIFY(panel.estimates().params_per_path > 24736);
  }

  void opensTheExampleRunsUnchanged() {
    // The grids in resources/runs/ open, validate, and come back through the widgets with
    // every key intact (keys the panel does not show included).
    QString source = qEnvironmentVariable("DIPACO_SOURCE_DIR");
    if (source.isEmpty()) source = QStringLiteral(QT_TESTCASE_SOURCEDIR "/../..");
    const QDir runs(source + QStringLiteral("/resources/runs"));
    const QStringList files = runs.entryList({QStringLiteral("*.toml")}, QDir::Files);
    if (files.isEmpty()) QSKIP("no resources/runs/*.toml in this checkout");
    for (const QString& name : files) {
      const QString path = runs.filePath(name);
      GridDesignerPanel panel;
      QString error;
      QVERIFY2(panel.open_file(path, &error), qPrintable(error));
      QVERIFY2(panel.valid(), qPrintable(name + QStringLiteral(": ") + panel.error()));
      auto direct = dipaco::load_grid_spec(path.toStdString());
      QVERIFY(direct.is_ok());
      QCOMPARE(panel.spec().to_toml(), direct->to_toml());
      QVERIFY(panel.estimates().data_parallel_bytes_per_outer_step >
              panel.estimates().bytes_per_outer_step);
      qInfo("%s: %d paths, %s", qPrintable(name), panel.spec().num_paths(),
            qPrintable(panel.estimates_text().replace(QLatin1Char('\n'), QStringLiteral("; "))));
    }
  }

  void screenshot() {
    GridDesignerPanel panel;
    panel.set_spec(tiny_grid());
    const QString path = studio_test::write_screenshot(&panel, QStringLiteral("designer"));
    QVERIFY(!path.isEmpty());
    QImage image(path);
    QCOMPARE(image.width(), 1280);
    qInfo("screenshot: %s", qPrintable(path));
  }
};

QTEST_MAIN(StudioDesignerTest)
#include "test_studio_designer.moc"
