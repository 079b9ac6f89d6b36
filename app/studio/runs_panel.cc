#include "runs_panel.h"

#include <qcustomplot.h>

#include <QCheckBox>
#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSplitter>
#include <QVBoxLayout>
#include <cmath>

#include "export/export_run.h"
#include "grid_estimates.h"
#include "plot_export.h"
#include "run_metrics.h"
#include "threaded_job.h"

namespace dipaco::studio {

namespace {

void add_curve(QCustomPlot* plot, const QString& name, const std::vector<CurvePoint>& curve,
               const QPen& pen) {
  QCPGraph* g = plot->addGraph();
  g->setName(name);
  g->setPen(pen);
  g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 4));
  for (const CurvePoint& p : curve) g->addData(p.outer_step, p.loss);
}

// A run's mean training loss from its database (empty without one).
std::vector<CurvePoint> train_curve(const RunRecord* run) {
  if (run == nullptr || run->db_run_id == 0) return {};
  auto events = load_run_events(*run);
  return events.is_ok() ? mean_train_loss(*events) : std::vector<CurvePoint>{};
}

QPen dashed(QColor color) {
  QPen pen(color, 1.5);
  pen.setStyle(Qt::DashLine);
  return pen;
}

QString describe(const RunRecord& r) {
  QString text = QStringLiteral("%1 — %2").arg(r.label, r.state);
  if (r.outer_steps > 0) text += QObject::tr(", %1 outer steps").arg(r.outer_steps);
  if (r.has_results && std::isfinite(r.routed_val_loss))
    text += QObject::tr(", routed val %1").arg(r.routed_val_loss, 0, 'f', 3);
  if (!r.problem.isEmpty()) text += QObject::tr(" (database: %1)").arg(r.problem);
  return text;
}

}  // namespace

RunsPanel::RunsPanel(QWidget* parent) : QWidget(parent) {
  auto* top = new QVBoxLayout(this);
  auto* root_row = new QHBoxLayout;
  root_ = new QLineEdit(QStringLiteral("runs"), this);
  auto* browse = new QPushButton(tr("Browse…"), this);
  auto* rescan = new QPushButton(tr("Rescan"), this);
  root_row->addWidget(new QLabel(tr("runs folder"), this));
  root_row->addWidget(root_, 1);
  root_row->addWidget(browse);
  root_row->addWidget(rescan);
  top->addLayout(root_row);
  connect(browse, &QPushButton::clicked, this, &RunsPanel::choose_root);
  connect(rescan, &QPushButton::clicked, this, [this] { refresh(); });
  connect(root_, &QLineEdit::editingFinished, this, [this] { refresh(); });

  auto* split = new QSplitter(Qt::Horizontal, this);
  list_ = new QListWidget(this);
  list_->setSelectionMode(QAbstractItemView::ExtendedSelection);
  list_->setToolTip(tr("Select one run to open it, two to compare them"));
  split->addWidget(list_);
  auto* right = new QWidget(this);
  auto* right_layout = new QVBoxLayout(right);
  right_layout->setContentsMargins(0, 0, 0, 0);
  plot_ = new QCustomPlot(this);
  plot_->setObjectName(QStringLiteral("plot.runs"));
  plot_->setMinimumSize(400, 260);
  plot_->xAxis->setLabel(tr("outer step"));
  plot_->yAxis->setLabel(tr("validation loss"));
  plot_->legend->setVisible(true);
  plot_->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
  add_export_menu(plot_);
  right_layout->addWidget(plot_, 3);
  auto* export_row = new QHBoxLayout;
  auto* csv = new QPushButton(tr("Export CSV…"), this);
  auto* png = new QPushButton(tr("Export PNG…"), this);
  export_row->addStretch(1);
  export_row->addWidget(csv);
  export_row->addWidget(png);
  right_layout->addLayout(export_row);
  connect(csv, &QPushButton::clicked, this, [this] {
    const QString path =
        QFileDialog::getSaveFileName(this, tr("Export CSV"), QString(), tr("CSV (*.csv)"));
    if (!path.isEmpty()) export_plot(plot_, path);
  });
  connect(png, &QPushButton::clicked, this, [this] {
    const QString path =
        QFileDialog::getSaveFileName(this, tr("Export PNG"), QString(), tr("PNG image (*.png)"));
    if (!path.isEmpty()) export_plot(plot_, path);
  });
  summary_ = new QPlainTextEdit(this);
  summary_->setReadOnly(true);
  summary_->setPlaceholderText(tr("summary.md of the selected run"));
  right_layout->addWidget(summary_, 2);

  auto* actions = new QHBoxLayout;
  open_dashboard_ = new QPushButton(tr("Open in dashboard"), this);
  open_dashboard_->setToolTip(
      tr("Replay the selected run's metrics and events into the "
         "Dashboard tab"));
  actions->addWidget(open_dashboard_);
  actions->addStretch(1);
  right_layout->addLayout(actions);
  connect(open_dashboard_, &QPushButton::clicked, this, [this] {
    if (auto run = selected_run()) emit open_in_dashboard(*run);
  });

  auto* paths_row = new QHBoxLayout;
  export_dir_ = new QLineEdit(this);
  export_dir_->setPlaceholderText(tr("export folder (must not exist yet)"));
  auto* browse_export = new QPushButton(tr("Browse…"), this);
  export_hf_ = new QCheckBox(tr("Hugging Face"), this);
  export_hf_->setChecked(true);
  export_gguf_ = new QCheckBox(tr("GGUF"), this);
  export_gguf_->setChecked(true);
  export_button_ = new QPushButton(tr("Export paths"), this);
  paths_row->addWidget(new QLabel(tr("export to"), this));
  paths_row->addWidget(export_dir_, 1);
  paths_row->addWidget(browse_export);
  paths_row->addWidget(export_hf_);
  paths_row->addWidget(export_gguf_);
  paths_row->addWidget(export_button_);
  right_layout->addLayout(paths_row);
  auto* export_state = new QHBoxLayout;
  export_progress_ = new QProgressBar(this);
  export_progress_->setRange(0, 1);
  export_progress_->setValue(0);
  export_progress_->setFormat(tr("%v files"));
  export_progress_->setMaximumWidth(160);
  export_status_ = new QLabel(this);
  export_status_->setObjectName(QStringLiteral("runs.export_status"));
  export_status_->setWordWrap(true);
  export_state->addWidget(export_progress_);
  export_state->addWidget(export_status_, 1);
  right_layout->addLayout(export_state);
  export_job_ = new ThreadedJob(this);
  connect(browse_export, &QPushButton::clicked, this, [this] {
    const QString dir = QFileDialog::getSaveFileName(this, tr("Export folder (a new one)"));
    if (!dir.isEmpty()) export_dir_->setText(dir);
  });
  connect(export_button_, &QPushButton::clicked, this, [this] {
    QString error;
    if (!export_selected(export_dir_->text(), export_hf_->isChecked(), export_gguf_->isChecked(),
                         &error))
      set_export_status(error, false);
  });
  connect(export_job_, &ThreadedJob::lines, this, [this](const QStringList& lines) {
    exported_files_ += static_cast<int>(lines.size());  // export_run logs a line per file
    export_progress_->setRange(0, 0);  // busy: the number of files is known only at the end
    export_progress_->setFormat(tr("%1 files").arg(exported_files_));
    set_export_status(lines.last(), true);
  });
  connect(export_job_, &ThreadedJob::finished, this, [this](bool ok, const QString& message) {
    export_button_->setEnabled(true);
    export_progress_->setRange(0, 1);
    export_progress_->setValue(ok ? 1 : 0);
    set_export_status(message, ok);
    emit exported(ok, message);
  });
  split->addWidget(right);
  split->setStretchFactor(1, 3);
  top->addWidget(split, 1);
  connect(list_, &QListWidget::itemSelectionChanged, this, &RunsPanel::selection_changed);
}

RunsPanel::~RunsPanel() {
  disconnect(root_, nullptr, this, nullptr);
}

void RunsPanel::set_root(const QString& root) {
  root_->setText(root);
  refresh();
}

QString RunsPanel::root() const {
  return root_->text();
}

QStringList RunsPanel::refresh() {
  records_ = list_runs(root_->text());
  QStringList labels;
  const QSignalBlocker block(list_);
  list_->clear();
  for (size_t i = 0; i < records_.size(); ++i) {
    auto* item = new QListWidgetItem(describe(records_[i]), list_);
    item->setData(Qt::UserRole, records_[i].dir);
    item->setData(Qt::UserRole + 1, static_cast<int>(i));
    labels << records_[i].label;
  }
  return labels;
}

const RunRecord* RunsPanel::record_for(const QString& dir) const {
  for (const RunRecord& r : records_) {
    if (r.dir == dir) return &r;
  }
  return nullptr;
}

std::optional<RunRecord> RunsPanel::selected_run() const {
  const auto items = list_->selectedItems();
  if (items.size() != 1) return std::nullopt;
  const int index = items[0]->data(Qt::UserRole + 1).toInt();
  if (index < 0 || static_cast<size_t>(index) >= records_.size()) return std::nullopt;
  return records_[static_cast<size_t>(index)];
}

bool RunsPanel::open_record(const RunRecord& run) {
  const bool curves = open_run(run.dir);
  const std::vector<CurvePoint> train = train_curve(&run);
  if (!train.empty()) {
    add_curve(plot_, tr("training (mean over paths)"), train, dashed(QColor(90, 90, 90)));
    plot_->rescaleAxes();
    plot_->xAxis->scaleRange(1.1);
    plot_->yAxis->scaleRange(1.1);
    plot_->yAxis->setLabel(tr("loss"));
    plot_->replot();
  }
  return curves || !train.empty();
}

bool RunsPanel::open_run(const QString& dir) {
  const RunMetrics m = load_run_metrics(dir);
  plot_->clearGraphs();
  for (const auto& [path, curve] : m.path_val) {
    add_curve(plot_, tr("path %1").arg(path), curve,
              QPen(QColor::fromHsv((path * 67) % 360, 200, 200), 1.5));
  }
  if (!m.routed_val.empty()) add_curve(plot_, tr("routed"), m.routed_val, QPen(Qt::black, 2.5));
  plot_->yAxis->setLabel(tr("validation loss"));
  plot_->rescaleAxes();
  plot_->xAxis->scaleRange(1.1);
  plot_->yAxis->scaleRange(1.1);
  plot_->replot();
  QFile summary(dir + QStringLiteral("/summary.md"));
  QString text = summary.open(QIODevice::ReadOnly)
                     ? QString::fromUtf8(summary.readAll())
                     : tr("(no summary.md: the run has not finished)");
  if (!m.traffic.empty()) {
    double wire = 0, dp = 0;
    for (const RoundTrafficPoint& t : m.traffic) {
      wire += t.bytes_up + t.bytes_down;
      dp += t.data_parallel_bytes;
    }
    text += tr("\n\nmetrics.jsonl: %1 rounds moved %2 (up + down); data parallel: %3 (%4× more)")
                .arg(m.traffic.size())
                .arg(QString::fromStdString(human_bytes(wire)))
                .arg(QString::fromStdString(human_bytes(dp)))
                .arg(wire > 0 ? dp / wire : 0.0, 0, 'f', 1);
  }
  summary_->setPlainText(text);
  return !m.path_val.empty() || !m.routed_val.empty();
}

bool RunsPanel::compare(const QString& a, const QString& b) {
  const RunMetrics ma = load_run_metrics(a), mb = load_run_metrics(b);
  plot_->clearGraphs();
  const QColor color_a(30, 90, 200), color_b(210, 80, 30);
  const RunRecord* ra = record_for(a);
  const RunRecord* rb = record_for(b);
  const QString name_a = ra != nullptr ? ra->label : QFileInfo(a).fileName();
  const QString name_b = rb != nullptr ? rb->label : QFileInfo(b).fileName();
  add_curve(plot_, name_a, ma.headline(), QPen(color_a, 2.5));
  add_curve(plot_, name_b, mb.headline(), QPen(color_b, 2.5));
  const std::vector<CurvePoint> train_a = train_curve(ra), train_b = train_curve(rb);
  if (!train_a.empty()) add_curve(plot_, name_a + tr(" training"), train_a, dashed(color_a));
  if (!train_b.empty()) add_curve(plot_, name_b + tr(" training"), train_b, dashed(color_b));
  plot_->yAxis->setLabel(train_a.empty() && train_b.empty() ? tr("validation loss") : tr("loss"));
  plot_->rescaleAxes();
  plot_->xAxis->scaleRange(1.1);
  plot_->yAxis->scaleRange(1.1);
  plot_->replot();
  summary_->setPlainText(tr("Comparing %1 and %2: routed validation loss per outer step (the "
                            "mean over paths where a run has none), solid; mean training loss "
                            "per outer step from the run's database, dashed.")
                             .arg(a, b));
  return (!ma.headline().empty() || !train_a.empty()) &&
         (!mb.headline().empty() || !train_b.empty());
}

bool RunsPanel::export_selected(const QString& out_dir, bool hf, bool gguf, QString* error) {
  const std::optional<RunRecord> run = selected_run();
  if (!run) {
    *error = tr("select one run to export");
    return false;
  }
  if (!hf && !gguf) {
    *error = tr("choose Hugging Face, GGUF or both");
    return false;
  }
  ExportOptions options;
  options.hf = hf;
  options.gguf = gguf;
  if (out_dir.trimmed().isEmpty()) {
    *error = tr("no export folder: choose where the exported paths go");
    return false;
  }
  const bool started = export_job_->start(
      [run_dir = run->dir.toStdString(), out = out_dir.toStdString(),
       options](FILE* log) mutable -> JobOutcome {
        options.log = log;
        auto summary = export_run(run_dir, out, options);
        if (!summary.is_ok()) return {false, QString::fromStdString(summary.status().message())};
        return {true, tr("exported %1 paths (%2 files) to %3")
                          .arg(summary->path_ids.size())
                          .arg(summary->files.size())
                          .arg(QString::fromStdString(summary->out_dir))};
      },
      error);
  if (!started) return false;
  exported_files_ = 0;
  export_dir_->setText(out_dir);
  export_button_->setEnabled(false);
  export_progress_->setRange(0, 0);
  set_export_status(tr("Exporting %1 to %2 …").arg(run->label, out_dir), true);
  return true;
}

bool RunsPanel::exporting() const {
  return export_job_->running();
}

QString RunsPanel::export_status() const {
  return export_status_->text();
}

void RunsPanel::set_export_status(const QString& text, bool ok) {
  export_status_->setText(text);
  export_status_->setStyleSheet(ok ? QString() : QStringLiteral("color: #d03030;"));
}

QString RunsPanel::summary_text() const {
  return summary_->toPlainText();
}

void RunsPanel::selection_changed() {
  const auto items = list_->selectedItems();
  if (items.size() == 1) {
    const int index = items[0]->data(Qt::UserRole + 1).toInt();
    if (index >= 0 && static_cast<size_t>(index) < records_.size())
      open_record(records_[static_cast<size_t>(index)]);
  }
  if (items.size() == 2)
    compare(items[0]->data(Qt::UserRole).toString(), items[1]->data(Qt::UserRole).toString());
}

void RunsPanel::choose_root() {
  const QString dir = QFileDialog::getExistingDirectory(this, tr("Runs folder"), root_->text());
  if (!dir.isEmpty()) set_root(dir);
}

}  // namespace dipaco::studio
