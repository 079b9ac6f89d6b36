#include "dashboard_panel.h"

#include <qcustomplot.h>

#include <QCheckBox>
#include <QDateTime>
#include <QElapsedTimer>
#include <QGridLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QListWidget>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QTimer>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

#include "grid_estimates.h"
#include "plot_export.h"
#include "run_control.h"

namespace dipaco::studio {

namespace {

constexpr int kFrameMs = 50;
constexpr int kMaxLogLines = 400;
// Lines appended to the event log per frame; a burst beyond that is summarized in one line
// (nobody reads more than a screenful at 20 fps, and appending is the costly part).
constexpr int kLogLinesPerFrame = 40;

enum TimelineRow {
  kGranted,
  kCompleted,
  kExpired,
  kPreempted,
  kCancelled,
  kAggregation,
  kOperator,
  kTimelineRows
};

int timeline_row(EventKind kind) {
  switch (kind) {
    case EventKind::kLeaseGranted: return kGranted;
    case EventKind::kLeaseCompleted: return kCompleted;
    case EventKind::kLeaseExpired: return kExpired;
    case EventKind::kLeasePreempted: return kPreempted;
    case EventKind::kLeaseCancelled:
    case EventKind::kPushRefused: return kCancelled;
    case EventKind::kAggregationReady:
    case EventKind::kModuleVersionCreated: return kAggregation;
    case EventKind::kMetric: return -1;
    default: return kOperator;
  }
}

QColor path_color(uint32_t path) {
  return QColor::fromHsv(static_cast<int>((path * 67) % 360), 200, 200);
}

QCustomPlot* make_plot(QWidget* parent, const QString& title) {
  auto* plot = new QCustomPlot(parent);
  plot->setMinimumSize(320, 200);
  plot->plotLayout()->insertRow(0);
  plot->plotLayout()->addElement(0, 0, new QCPTextElement(plot, title, QFont(QString(), 10)));
  plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
  add_export_menu(plot);
  return plot;
}

// Trailing moving average over `window` points.
std::vector<double> smooth(const std::vector<double>& y, int window) {
  if (window <= 1) return y;
  std::vector<double> out(y.size());
  double sum = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    sum += y[i];
    if (i >= static_cast<size_t>(window)) sum -= y[i - static_cast<size_t>(window)];
    out[i] = sum / static_cast<double>(std::min(i + 1, static_cast<size_t>(window)));
  }
  return out;
}

QVector<double> qvec(const std::vector<double>& v) {
  return QVector<double>(v.begin(), v.end());
}

}  // namespace

DashboardPanel::DashboardPanel(QWidget* parent) : QWidget(parent) {
  auto* top = new QVBoxLayout(this);

  // Operator actions.
  auto* actions = new QHBoxLayout;
  auto button = [this, actions](const QString& text, const QString& tip) {
    auto* b = new QPushButton(text, this);
    b->setToolTip(tip);
    b->setEnabled(false);
    actions->addWidget(b);
    action_buttons_.push_back(b);
    return b;
  };
  QPushButton* pause = button(tr("Pause"), tr("No new tasks are leased; leases in flight finish"));
  QPushButton* resume = button(tr("Resume"), tr("Lease tasks again"));
  inner_steps_ = new QSpinBox(this);
  inner_steps_->setRange(1, 1 << 30);
  inner_steps_->setValue(50);
  inner_steps_->setPrefix(tr("H = "));
  actions->addWidget(inner_steps_);
  QPushButton* set_h = button(tr("Change H"), tr("Inner steps for the outer steps opened next"));
  QPushButton* preempt =
      button(tr("Preempt task"), tr("End the selected worker's lease; its task is requeued"));
  QPushButton* drain =
      button(tr("Drain worker"), tr("The selected worker finishes its task and gets no more"));
  QPushButton* undrain = button(tr("Undrain worker"),
                                tr("The selected drained worker takes tasks again (a drain lasts "
                                   "across the worker's restarts until undone)"));
  status_ = new QLabel(
      tr("No run attached: start or attach one in the Launch tab, or open a past run in Runs."),
      this);
  status_->setObjectName(QStringLiteral("dashboard.status"));
  actions->addWidget(status_, 1);
  top->addLayout(actions);
  connect(pause, &QPushButton::clicked, this,
          [this] { operator_action(tr("pause"), [](RunControl* c) { return c->pause(); }); });
  connect(resume, &QPushButton::clicked, this,
          [this] { operator_action(tr("resume"), [](RunControl* c) { return c->resume(); }); });
  connect(set_h, &QPushButton::clicked, this, [this] {
    const auto h = static_cast<uint32_t>(inner_steps_->value());
    operator_action(tr("change H"), [h](RunControl* c) { return c->set_inner_steps(h); });
  });
  connect(preempt, &QPushButton::clicked, this, [this] {
    auto it = worker_rows_.find(selected_worker().toStdString());
    if (it == worker_rows_.end() || it->second.lease_id == 0) {
      report(tr("preempt"), false, tr("select a worker that holds a lease"));
      return;
    }
    const int64_t lease_id = it->second.lease_id;
    operator_action(tr("preempt"), [lease_id](RunControl* c) { return c->preempt(lease_id); });
  });
  connect(drain, &QPushButton::clicked, this, [this] {
    const std::string w = selected_worker().toStdString();
    if (w.empty()) {
      report(tr("drain"), false, tr("select a worker"));
      return;
    }
    operator_action(tr("drain"), [w](RunControl* c) { return c->drain(w); });
  });
  connect(undrain, &QPushButton::clicked, this, [this] {
    const std::string w = selected_worker().toStdString();
    if (w.empty()) {
      report(tr("undrain"), false, tr("select a worker"));
      return;
    }
    operator_action(tr("undrain"), [w](RunControl* c) { return c->undrain(w); });
  });

  // Plots.
  auto* plots = new QGridLayout;
  top->addLayout(plots, 3);

  auto* loss_box = new QWidget(this);
  auto* loss_layout = new QHBoxLayout(loss_box);
  loss_layout->setContentsMargins(0, 0, 0, 0);
  auto* loss_controls = new QVBoxLayout;
  path_list_ = new QListWidget(this);
  path_list_->setMaximumWidth(110);
  path_list_->setToolTip(tr("Paths shown in the loss plot"));
  connect(path_list_, &QListWidget::itemChanged, this, [this](QListWidgetItem* item) {
    set_path_visible(item->data(Qt::UserRole).toInt(), item->checkState() == Qt::Checked);
  });
  log_scale_ = new QCheckBox(tr("log scale"), this);
  connect(log_scale_, &QCheckBox::toggled, this, &DashboardPanel::set_log_scale);
  smoothing_box_ = new QSpinBox(this);
  smoothing_box_->setRange(1, 1000);
  smoothing_box_->setPrefix(tr("smooth "));
  smoothing_box_->setToolTip(tr("Moving average over this many points"));
  connect(smoothing_box_, &QSpinBox::valueChanged, this, &DashboardPanel::set_smoothing);
  loss_controls->addWidget(path_list_, 1);
  loss_controls->addWidget(log_scale_);
  loss_controls->addWidget(smoothing_box_);
  loss_layout->addLayout(loss_controls);
  loss_plot_ = make_plot(this, tr("Loss per path (solid: train, dashed: validation)"));
  loss_plot_->setObjectName(QStringLiteral("plot.loss"));
  loss_plot_->xAxis->setLabel(tr("outer step"));
  loss_plot_->yAxis->setLabel(tr("loss (nats/token)"));
  loss_plot_->legend->setVisible(true);
  loss_plot_->legend->setFont(QFont(QString(), 7));
  loss_layout->addWidget(loss_plot_, 1);
  plots->addWidget(loss_box, 0, 0);

  comm_plot_ = make_plot(this, tr("Communication per outer step and cumulative"));
  comm_plot_->setObjectName(QStringLiteral("plot.comm"));
  comm_plot_->xAxis->setLabel(tr("outer step"));
  comm_plot_->yAxis->setLabel(tr("bytes per round"));
  comm_plot_->yAxis2->setVisible(true);
  comm_plot_->yAxis2->setLabel(tr("cumulative bytes"));
  comm_plot_->legend->setVisible(true);
  comm_plot_->legend->setFont(QFont(QString(), 7));
  // The legend in a row of its own under the plot: the bars and lines fill the axis rect.
  comm_plot_->axisRect()->insetLayout()->take(comm_plot_->legend);
  comm_plot_->plotLayout()->addElement(2, 0, comm_plot_->legend);
  comm_plot_->legend->setFillOrder(QCPLegend::foColumnsFirst);
  comm_plot_->plotLayout()->setRowStretchFactor(2, 0.001);
  comm_plot_->plotLayout()->setRowSpacing(0);
  round_bars_ = new QCPBars(comm_plot_->xAxis, comm_plot_->yAxis);
  round_bars_->setName(tr("per round (up + down)"));
  round_bars_->setWidth(0.6);
  round_bars_->setBrush(QColor(80, 140, 220, 140));
  cumulative_ = comm_plot_->addGraph(comm_plot_->xAxis, comm_plot_->yAxis2);
  cumulative_->setName(tr("cumulative"));
  cumulative_->setPen(QPen(QColor(20, 60, 160), 2));
  dp_line_ = comm_plot_->addGraph(comm_plot_->xAxis, comm_plot_->yAxis2);
  dp_line_->setName(tr("data parallel, cumulative"));
  dp_line_->setPen(QPen(QColor(200, 60, 40), 2, Qt::DashLine));
  plots->addWidget(comm_plot_, 0, 1);

  timeline_plot_ = make_plot(this, tr("Leases and operator events"));
  timeline_plot_->setObjectName(QStringLiteral("plot.timeline"));
  timeline_plot_->xAxis->setLabel(tr("seconds since the first event"));
  auto ticker = QSharedPointer<QCPAxisTickerText>::create();
  const QStringList rows = {tr("granted"),   tr("completed"),   tr("expired"), tr("preempted"),
                            tr("cancelled"), tr("aggregation"), tr("operator")};
  for (int i = 0; i < rows.size(); ++i) ticker->addTick(i, rows[i]);
  timeline_plot_->yAxis->setTicker(ticker);
  timeline_plot_->yAxis->setRange(-0.5, static_cast<double>(kTimelineRows) - 0.5);
  const QColor colors[] = {QColor(60, 120, 220), QColor(40, 160, 60),   QColor(220, 140, 20),
                           QColor(200, 40, 40),  QColor(120, 120, 120), QColor(140, 60, 180),
                           QColor(20, 20, 20)};
  for (int i = 0; i < kTimelineRows; ++i) {
    QCPGraph* g = timeline_plot_->addGraph();
    g->setName(rows[i]);
    g->setLineStyle(QCPGraph::lsNone);
    // Squares without antialiasing: thousands of discs would cost most of a frame.
    g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssSquare, colors[i], colors[i], 4));
    g->setAntialiasedScatters(false);
    timeline_graphs_.push_back(g);
  }
  plots->addWidget(timeline_plot_, 1, 0);

  heatmap_plot_ = make_plot(this, tr("Progress: path × outer step (1 = every shard done)"));
  heatmap_plot_->setObjectName(QStringLiteral("plot.heatmap"));
  heatmap_plot_->xAxis->setLabel(tr("outer step"));
  heatmap_plot_->yAxis->setLabel(tr("path"));
  for (QCPAxis* axis : {heatmap_plot_->xAxis, heatmap_plot_->yAxis}) {
    auto whole = QSharedPointer<QCPAxisTickerFixed>::create();
    whole->setTickStep(1.0);
    whole->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
    axis->setTicker(whole);
  }
  heatmap_ = new QCPColorMap(heatmap_plot_->xAxis, heatmap_plot_->yAxis);
  heatmap_->setName(tr("progress"));
  QCPColorGradient progress;  // not started: light grey; leased: amber; done: green
  progress.setColorStopAt(0.0, QColor(235, 235, 235));
  progress.setColorStopAt(0.5, QColor(240, 170, 40));
  progress.setColorStopAt(1.0, QColor(40, 160, 70));
  heatmap_->setGradient(progress);
  heatmap_->setDataRange(QCPRange(0, 1));
  heatmap_->setInterpolate(false);
  auto* scale = new QCPColorScale(heatmap_plot_);
  heatmap_plot_->plotLayout()->addElement(1, 1, scale);
  scale->setType(QCPAxis::atRight);
  scale->setDataRange(QCPRange(0, 1));
  scale->axis()->setTicker(QSharedPointer<QCPAxisTickerText>::create());
  qSharedPointerCast<QCPAxisTickerText>(scale->axis()->ticker())
      ->addTicks({{0.0, tr("waiting")}, {0.5, tr("leased")}, {1.0, tr("done")}});
  heatmap_->setColorScale(scale);  // the map takes its gradient from the scale
  scale->setGradient(progress);
  plots->addWidget(heatmap_plot_, 1, 1);

  // Workers and the event log.
  auto* bottom = new QSplitter(Qt::Horizontal, this);
  workers_ = new QTableWidget(0, 7, this);
  workers_->setObjectName(QStringLiteral("table.workers"));
  workers_->setHorizontalHeaderLabels({tr("worker"), tr("host"), tr("device"), tr("state"),
                                       tr("task"), tr("tokens/s"), tr("last heartbeat")});
  workers_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  workers_->setSelectionBehavior(QAbstractItemView::SelectRows);
  workers_->setSelectionMode(QAbstractItemView::SingleSelection);
  workers_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  workers_->verticalHeader()->setVisible(false);
  log_ = new QPlainTextEdit(this);
  log_->setReadOnly(true);
  log_->setMaximumBlockCount(kMaxLogLines);
  bottom->addWidget(workers_);
  bottom->addWidget(log_);
  top->addWidget(bottom, 1);

  frame_timer_ = new QTimer(this);
  frame_timer_->setInterval(kFrameMs);
  connect(frame_timer_, &QTimer::timeout, this, &DashboardPanel::process_pending);
  frame_timer_->start();
  poll_timer_ = new QTimer(this);
  poll_timer_->setInterval(1000);
  connect(poll_timer_, &QTimer::timeout, this, &DashboardPanel::poll_workers);
  poll_timer_->start();
}

DashboardPanel::~DashboardPanel() {
  join_control_thread();
}

void DashboardPanel::join_control_thread() {
  if (control_thread_.joinable()) control_thread_.join();
}

void DashboardPanel::set_control(RunControl* control) {
  join_control_thread();
  control_busy_ = false;
  control_ = control;
}

bool DashboardPanel::off_gui(std::function<std::function<void()>(RunControl*)> work) {
  if (control_ == nullptr || control_busy_) return false;
  join_control_thread();  // the previous call has finished: its reply was delivered
  control_busy_ = true;
  RunControl* control = control_;
  control_thread_ = std::thread([this, control, work = std::move(work)] {
    std::function<void()> done = work(control);
    QMetaObject::invokeMethod(
        this,
        [this, done = std::move(done)] {
          control_busy_ = false;
          done();
        },
        Qt::QueuedConnection);
  });
  return true;
}

void DashboardPanel::operator_action(const QString& what,
                                     std::function<Result<OperatorReply>(RunControl*)> call) {
  const bool started = off_gui([this, what, call = std::move(call)](RunControl* c) {
    auto r = call(c);
    const bool ok = r.is_ok();
    const QString message = QString::fromStdString(ok ? r->message : r.status().message());
    return std::function<void()>([this, what, ok, message] { report(what, ok, message); });
  });
  if (!started) {
    report(what, false,
           control_ == nullptr ? tr("no run attached") : tr("another action is in flight"));
  } else {
    report(what, true, tr("…"));
  }
}

void DashboardPanel::showEvent(QShowEvent* event) {
  QWidget::showEvent(event);
  process_pending();
}

void DashboardPanel::set_grid(int paths, uint64_t outer_steps, int shards_per_path) {
  grid_paths_ = paths;
  grid_steps_ = outer_steps;
  shards_per_path_ = std::max(1, shards_per_path);
  for (int p = 0; p < paths; ++p) path(static_cast<uint32_t>(p));
  heat_dirty_ = true;
}

void DashboardPanel::set_data_parallel_bytes_per_step(double bytes) {
  dp_per_step_ = bytes;
  comm_dirty_ = true;
}

void DashboardPanel::set_inner_steps_shown(uint32_t inner_steps) {
  inner_steps_->setValue(static_cast<int>(inner_steps));
}

void DashboardPanel::set_status_text(const QString& text) {
  status_->setStyleSheet(QString());
  status_->setText(text);
}

QString DashboardPanel::status_text() const {
  return status_->text();
}

void DashboardPanel::reset() {
  buffer_->take_all();
  for (auto& [id, s] : paths_) {
    loss_plot_->removeGraph(s.train);
    loss_plot_->removeGraph(s.val);
  }
  paths_.clear();
  path_list_->clear();
  if (routed_ != nullptr) loss_plot_->removeGraph(routed_);
  routed_ = nullptr;
  routed_x_.clear();
  routed_y_.clear();
  round_bytes_.clear();
  cells_.clear();
  task_worker_.clear();
  worker_rows_.clear();
  log_lines_.clear();
  log_->clear();
  first_time_ms_ = -1;
  timeline_count_ = 0;
  for (QCPGraph* g : timeline_graphs_) g->data()->clear();
  grid_paths_ = 0;
  grid_steps_ = 0;
  comm_dirty_ = heat_dirty_ = workers_dirty_ = timeline_dirty_ = true;
  routed_dirty_ = false;
  process_pending();
}

void DashboardPanel::set_frame_interval_ms(int ms) {
  frame_timer_->setInterval(ms);
}

int DashboardPanel::frame_interval_ms() const {
  return frame_timer_->interval();
}

DashboardPanel::PathSeries& DashboardPanel::path(uint32_t id) {
  auto it = paths_.find(id);
  if (it != paths_.end()) return it->second;
  PathSeries& s = paths_[id];
  const QColor color = path_color(id);
  s.train = loss_plot_->addGraph();
  s.train->setName(tr("path %1 train").arg(id));
  s.train->setPen(QPen(color, 1.5));
  s.val = loss_plot_->addGraph();
  s.val->setName(tr("path %1 val").arg(id));
  s.val->setPen(QPen(color, 2, Qt::DashLine));
  s.val->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 5));
  auto* item = new QListWidgetItem(tr("path %1").arg(id));
  item->setData(Qt::UserRole, static_cast<int>(id));
  item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
  item->setCheckState(Qt::Checked);
  item->setForeground(color);
  path_list_->addItem(item);
  grid_paths_ = std::max(grid_paths_, static_cast<int>(id) + 1);
  heat_dirty_ = true;
  return s;
}

void DashboardPanel::apply(const RunEvent& e) {
  ++applied_;
  if (e.kind == EventKind::kMetric) {
    if (e.metric_name == "train_loss") {
      PathSeries& s = path(e.path_id);
      s.train_x.push_back(static_cast<double>(e.outer_step) + 0.5);
      s.train_y.push_back(e.value);
      s.dirty = true;
    } else if (e.metric_name == "val_loss") {
      PathSeries& s = path(e.path_id);
      s.val_x.push_back(static_cast<double>(e.outer_step));
      s.val_y.push_back(e.value);
      s.dirty = true;
    } else if (e.metric_name == "routed_val_loss") {
      routed_x_.push_back(static_cast<double>(e.outer_step));
      routed_y_.push_back(e.value);
      routed_dirty_ = true;
    } else if (e.metric_name == "bytes_up" || e.metric_name == "bytes_down") {
      round_bytes_[e.outer_step] += e.value;
      comm_dirty_ = true;
    } else if (e.metric_name == "tokens_per_second") {
      auto w = task_worker_.find({e.path_id, e.outer_step});
      if (w != task_worker_.end()) {
        worker_rows_[w->second].tokens_per_second = e.value;
        workers_dirty_ = true;
      }
    }
    grid_steps_ = std::max(grid_steps_, e.outer_step + 1);
    return;
  }

  if (first_time_ms_ < 0) first_time_ms_ = e.time_ms;
  const int row = timeline_row(e.kind);
  if (row >= 0) {
    timeline_graphs_[static_cast<size_t>(row)]->addData(
        static_cast<double>(e.time_ms - first_time_ms_) / 1000.0, row);
    ++timeline_count_;
    timeline_dirty_ = true;
  }
  log_lines_ << QStringLiteral("%1  %2").arg(QString(event_kind_name(e.kind)),
                                             QString::fromStdString(e.detail));
  const std::pair<uint32_t, uint64_t> key{e.path_id, e.outer_step};
  auto worker = [&]() -> WorkerRow& {
    WorkerRow& w = worker_rows_[e.worker_id];
    w.last_seen_ms = std::max(w.last_seen_ms, e.time_ms);
    workers_dirty_ = true;
    return w;
  };
  switch (e.kind) {
    case EventKind::kLeaseGranted: {
      // An event without its lease's fields (a server that streams only kind and sentence)
      // still marks the timeline, but says nothing about workers or cells.
      if (e.worker_id.empty()) break;
      WorkerRow& w = worker();
      w.state = tr("training");
      w.task = tr("path %1 shard %2 step %3").arg(e.path_id).arg(e.shard_id).arg(e.outer_step);
      w.lease_id = e.lease_id;
      task_worker_[key] = e.worker_id;
      cells_[key].leased++;
      grid_steps_ = std::max(grid_steps_, e.outer_step + 1);
      path(e.path_id);
      heat_dirty_ = true;
      break;
    }
    case EventKind::kLeaseCompleted:
    case EventKind::kLeaseExpired:
    case EventKind::kLeasePreempted:
    case EventKind::kLeaseCancelled: {
      if (e.worker_id.empty()) break;
      {
        WorkerRow& w = worker();
        if (w.lease_id == e.lease_id || e.lease_id == 0) {
          w.state = e.kind == EventKind::kLeaseCompleted
                        ? tr("idle")
                        : tr("idle (lease %1)").arg(QString(event_kind_name(e.kind)));
          w.task.clear();
          w.lease_id = 0;
        }
      }
      Cell& c = cells_[key];
      c.leased = std::max(0, c.leased - 1);
      if (e.kind == EventKind::kLeaseCompleted || e.kind == EventKind::kLeaseCancelled) c.done++;
      heat_dirty_ = true;
      break;
    }
    case EventKind::kWorkerDraining:
      if (!e.worker_id.empty()) worker().state = tr("draining");
      break;
    case EventKind::kWorkerUndrained:
      if (!e.worker_id.empty()) worker().state = tr("idle");
      break;
    case EventKind::kInnerStepsChanged:
      if (e.version > 0) inner_steps_->setValue(static_cast<int>(e.version));
      break;
    default: break;
  }
}

void DashboardPanel::process_pending() {
  QElapsedTimer timer;
  timer.start();
  struct Account {
    QElapsedTimer& timer;
    DashboardPanel* panel;
    ~Account() {
      const double ms = static_cast<double>(timer.nsecsElapsed()) / 1e6;
      panel->max_frame_ms_ = std::max(panel->max_frame_ms_, ms);
      panel->total_frame_ms_ += ms;
    }
  } account{timer, this};
  std::vector<RunEvent> events = buffer_->take_all();
  for (const RunEvent& e : events) apply(e);
  ++frames_;
  const bool any_actions = control_ != nullptr && control_->attached();
  for (QPushButton* b : action_buttons_) b->setEnabled(any_actions);
  if (events.empty() && !comm_dirty_ && !heat_dirty_ && !workers_dirty_ && !timeline_dirty_ &&
      !routed_dirty_)
    return;
  if (!isVisible()) {
    // Nobody sees the plots: keep the dirty flags, redraw when shown.
    if (log_lines_.size() > kMaxLogLines)
      log_lines_ = log_lines_.mid(log_lines_.size() - kMaxLogLines);
    if (!events.empty()) emit updated();
    return;
  }
  redraw_losses();
  if (comm_dirty_) redraw_comm();
  if (heat_dirty_) redraw_heatmap();
  if (workers_dirty_) redraw_workers();
  if (timeline_dirty_) {
    timeline_plot_->xAxis->rescale();
    timeline_plot_->xAxis->scaleRange(1.05);
    timeline_plot_->replot();
    timeline_dirty_ = false;
  }
  if (!log_lines_.isEmpty()) {
    if (log_lines_.size() > kLogLinesPerFrame) {
      const qsizetype skipped = log_lines_.size() - kLogLinesPerFrame;
      log_lines_ = log_lines_.mid(skipped);
      log_lines_.prepend(tr("… %1 more events").arg(skipped));
    }
    log_->appendPlainText(log_lines_.join(QLatin1Char('\n')));
    log_lines_.clear();
  }
  if (!events.empty()) emit updated();
}

void DashboardPanel::redraw_losses() {
  bool changed = routed_dirty_;
  for (auto& [id, s] : paths_) {
    if (!s.dirty) continue;
    s.train->setData(qvec(s.train_x), qvec(smooth(s.train_y, smoothing_)), true);
    s.val->setData(qvec(s.val_x), qvec(s.val_y), true);
    s.dirty = false;
    changed = true;
  }
  if (routed_dirty_) {
    if (routed_ == nullptr) {
      routed_ = loss_plot_->addGraph();
      routed_->setName(tr("routed validation"));
      routed_->setPen(QPen(Qt::black, 2.5));
      routed_->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssSquare, 6));
    }
    routed_->setData(qvec(routed_x_), qvec(routed_y_), true);
    routed_dirty_ = false;
  }
  if (!changed) return;
  loss_plot_->rescaleAxes(true);
  loss_plot_->xAxis->scaleRange(1.05);
  loss_plot_->yAxis->scaleRange(1.1);
  loss_plot_->replot();
}

void DashboardPanel::redraw_comm() {
  QVector<double> keys, values, cum, dp;
  double total = 0;
  for (const auto& [step, bytes] : round_bytes_) {
    keys << static_cast<double>(step);
    values << bytes;
    total += bytes;
    cum << total;
    dp << dp_per_step_ * static_cast<double>(step + 1);
  }
  round_bars_->setData(keys, values, true);
  cumulative_->setData(keys, cum, true);
  if (dp_per_step_ > 0) {
    dp_line_->setData(keys, dp, true);
  } else {
    dp_line_->data()->clear();
  }
  comm_plot_->xAxis->setRange(-0.5, std::max(1.0, static_cast<double>(keys.size())) + 0.5);
  comm_plot_->yAxis->rescale(true);
  comm_plot_->yAxis->setRangeLower(0);
  comm_plot_->yAxis->scaleRange(1.15);
  comm_plot_->yAxis->setRangeLower(0);
  comm_plot_->yAxis2->rescale(true);
  comm_plot_->yAxis2->setRangeLower(0);
  comm_plot_->yAxis2->scaleRange(1.1);
  comm_plot_->yAxis2->setRangeLower(0);
  comm_plot_->replot();
  comm_dirty_ = false;
}

void DashboardPanel::redraw_heatmap() {
  const int nx = static_cast<int>(std::max<uint64_t>(grid_steps_, 1));
  const int ny = std::max(grid_paths_, 1);
  heatmap_->data()->setSize(nx, ny);
  heatmap_->data()->setRange(QCPRange(0, nx - 1), QCPRange(0, ny - 1));
  for (int x = 0; x < nx; ++x)
    for (int y = 0; y < ny; ++y) heatmap_->data()->setCell(x, y, heat(y, static_cast<uint64_t>(x)));
  heatmap_plot_->xAxis->setRange(-0.5, nx - 0.5);
  heatmap_plot_->yAxis->setRange(-0.5, ny - 0.5);
  heatmap_plot_->replot();
  heat_dirty_ = false;
}

double DashboardPanel::heat(int path, uint64_t outer_step) const {
  auto it = cells_.find({static_cast<uint32_t>(path), outer_step});
  if (it == cells_.end()) return 0;
  const double done = std::min(1.0, static_cast<double>(it->second.done) / shards_per_path_);
  if (done >= 1.0) return 1.0;
  return std::max(done, it->second.leased > 0 ? 0.5 : 0.0);
}

void DashboardPanel::redraw_workers() {
  const QString selected = selected_worker();
  workers_->setRowCount(static_cast<int>(worker_rows_.size()));
  const int64_t now = QDateTime::currentMSecsSinceEpoch();
  int row = 0;
  for (const auto& [id, w] : worker_rows_) {
    const double ago = w.last_seen_ms > 0 ? static_cast<double>(now - w.last_seen_ms) / 1000.0 : -1;
    const QStringList cells = {
        QString::fromStdString(id),
        w.host,
        w.device,
        w.state,
        w.task,
        w.tokens_per_second > 0 ? QString::number(w.tokens_per_second, 'f', 0) : QString(),
        ago < 0     ? QString()
        : ago < 600 ? tr("%1 s ago").arg(std::max(0.0, ago), 0, 'f', 1)
                    : QDateTime::fromMSecsSinceEpoch(w.last_seen_ms).toString(Qt::ISODate)};
    for (int c = 0; c < cells.size(); ++c) {
      QTableWidgetItem* item = workers_->item(row, c);
      if (item == nullptr) {
        item = new QTableWidgetItem;
        workers_->setItem(row, c, item);
      }
      item->setText(cells[c]);
    }
    if (QString::fromStdString(id) == selected) workers_->selectRow(row);
    ++row;
  }
  workers_dirty_ = false;
}

void DashboardPanel::poll_workers() {
  if (control_ == nullptr || !control_->lists_workers() || !control_->attached()) return;
  off_gui([this](RunControl* c) {
    auto workers = c->workers();
    return std::function<void()>([this, workers = std::move(workers)] {
      if (!workers.is_ok()) return;
      for (const WorkerStatus& s : *workers) {
        WorkerRow& w = worker_rows_[s.worker_id];
        w.host = QString::fromStdString(s.host);
        w.device = QString::fromStdString(s.devices);
        w.last_seen_ms = std::max(w.last_seen_ms, s.last_heartbeat_ms);
        if (s.state == "draining")
          w.state = tr("draining");
        else if (w.state == tr("draining"))
          w.state = s.live_lease_id != 0 ? tr("training") : tr("idle");
        if (s.live_lease_id != 0) w.lease_id = s.live_lease_id;
      }
      workers_dirty_ = true;
    });
  });
}

QString DashboardPanel::selected_worker() const {
  const auto rows = workers_->selectionModel()->selectedRows();
  if (rows.isEmpty()) return QString();
  QTableWidgetItem* item = workers_->item(rows.first().row(), 0);
  return item != nullptr ? item->text() : QString();
}

void DashboardPanel::report(const QString& what, bool ok, const QString& message) {
  status_->setText(QStringLiteral("%1: %2").arg(what, message.isEmpty() ? tr("done") : message));
  status_->setStyleSheet(ok ? QString() : QStringLiteral("color: #d03030;"));
}

void DashboardPanel::set_path_visible(int path_id, bool visible) {
  auto it = paths_.find(static_cast<uint32_t>(path_id));
  if (it == paths_.end()) return;
  it->second.visible = visible;
  it->second.train->setVisible(visible);
  it->second.val->setVisible(visible);
  for (int i = 0; i < path_list_->count(); ++i) {
    QListWidgetItem* item = path_list_->item(i);
    if (item->data(Qt::UserRole).toInt() == path_id) {
      const QSignalBlocker block(path_list_);
      item->setCheckState(visible ? Qt::Checked : Qt::Unchecked);
    }
  }
  loss_plot_->replot();
}

void DashboardPanel::set_log_scale(bool on) {
  {
    const QSignalBlocker block(log_scale_);
    log_scale_->setChecked(on);
  }
  loss_plot_->yAxis->setScaleType(on ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
  if (on) {
    loss_plot_->yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>::create());
  } else {
    loss_plot_->yAxis->setTicker(QSharedPointer<QCPAxisTicker>::create());
  }
  loss_plot_->rescaleAxes(true);
  loss_plot_->replot();
}

bool DashboardPanel::log_scale() const {
  return log_scale_->isChecked();
}

void DashboardPanel::set_smoothing(int window) {
  smoothing_ = std::max(1, window);
  {
    const QSignalBlocker block(smoothing_box_);
    smoothing_box_->setValue(smoothing_);
  }
  for (auto& [id, s] : paths_) s.dirty = true;
  redraw_losses();
}

int DashboardPanel::train_points(int path_id) const {
  auto it = paths_.find(static_cast<uint32_t>(path_id));
  return it == paths_.end() ? 0 : it->second.train->dataCount();
}

int DashboardPanel::val_points(int path_id) const {
  auto it = paths_.find(static_cast<uint32_t>(path_id));
  return it == paths_.end() ? 0 : it->second.val->dataCount();
}

int DashboardPanel::routed_points() const {
  return routed_ == nullptr ? 0 : routed_->dataCount();
}

int DashboardPanel::timeline_points() const {
  int n = 0;
  for (QCPGraph* g : timeline_graphs_) n += g->dataCount();
  return n;
}

int DashboardPanel::comm_rounds() const {
  return round_bars_->dataCount();
}

}  // namespace dipaco::studio
