#include "runs_panel.h"

#include <qcustomplot.h>

#include <QDir>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSplitter>
#include <QVBoxLayout>

#include "grid_estimates.h"
#include "plot_export.h"
#include "run_metrics.h"

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
  split->addWidget(right);
  split->setStretchFactor(1, 3);
  top->addWidget(split, 1);
  connect(list_, &QListWidget::itemSelectionChanged, this, &RunsPanel::selection_changed);
}

void RunsPanel::set_root(const QString& root) {
  root_->setText(root);
  refresh();
}

QString RunsPanel::root() const {
  return root_->text();
}

QStringList RunsPanel::refresh() {
  QStringList runs;
  const QDir dir(root_->text());
  for (const QString& name : dir.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Name)) {
    const QDir run(dir.filePath(name));
    if (run.exists(QStringLiteral("run.json")) || run.exists(QStringLiteral("metrics.jsonl")))
      runs << name;
  }
  const QSignalBlocker block(list_);
  list_->clear();
  for (const QString& name : runs) {
    auto* item = new QListWidgetItem(name, list_);
    item->setData(Qt::UserRole, dir.filePath(name));
  }
  return runs;
}

bool RunsPanel::open_run(const QString& dir) {
  const RunMetrics m = load_run_metrics(dir);
  plot_->clearGraphs();
  for (const auto& [path, curve] : m.path_val) {
    add_curve(plot_, tr("path %1").arg(path), curve,
              QPen(QColor::fromHsv((path * 67) % 360, 200, 200), 1.5));
  }
  if (!m.routed_val.empty()) add_curve(plot_, tr("routed"), m.routed_val, QPen(Qt::black, 2.5));
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
  add_curve(plot_, QFileInfo(a).fileName(), ma.headline(), QPen(QColor(30, 90, 200), 2.5));
  add_curve(plot_, QFileInfo(b).fileName(), mb.headline(), QPen(QColor(210, 80, 30), 2.5));
  plot_->rescaleAxes();
  plot_->xAxis->scaleRange(1.1);
  plot_->yAxis->scaleRange(1.1);
  plot_->replot();
  summary_->setPlainText(tr("Comparing %1 and %2: routed validation loss per outer step (the "
                            "mean over paths where a run has none).")
                             .arg(a, b));
  return !ma.headline().empty() && !mb.headline().empty();
}

QString RunsPanel::summary_text() const {
  return summary_->toPlainText();
}

void RunsPanel::selection_changed() {
  const auto items = list_->selectedItems();
  if (items.size() == 1) open_run(items[0]->data(Qt::UserRole).toString());
  if (items.size() == 2)
    compare(items[0]->data(Qt::UserRole).toString(), items[1]->data(Qt::UserRole).toString());
}

void RunsPanel::choose_root() {
  const QString dir = QFileDialog::getExistingDirectory(this, tr("Runs folder"), root_->text());
  if (!dir.isEmpty()) set_root(dir);
}

}  // namespace dipaco::studio
