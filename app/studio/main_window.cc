#include "main_window.h"

#include <QAction>
#include <QCloseEvent>
#include <QDir>
#include <QFileInfo>
#include <QKeySequence>
#include <QLabel>
#include <QSettings>
#include <QStatusBar>
#include <QTabWidget>
#include <QVBoxLayout>

#include "backend/cpu/cpu_features.h"
#include "dashboard_panel.h"
#include "data/token_file.h"
#include "data_panel.h"
#include "grid_designer_panel.h"
#include "grid_estimates.h"
#include "launch_panel.h"
#include "runs_panel.h"

namespace dipaco::studio {

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  setWindowTitle(QStringLiteral("dipaco studio %1").arg(QStringLiteral(DIPACO_VERSION)));
  tabs_ = new QTabWidget(this);
  designer_ = new GridDesignerPanel(tabs_);
  data_ = new DataPanel(tabs_);
  launch_ = new LaunchPanel(tabs_);
  dashboard_ = new DashboardPanel(tabs_);
  runs_ = new RunsPanel(tabs_);
  auto* host = new QWidget(tabs_);
  auto* layout = new QVBoxLayout(host);
  layout->addWidget(
      new QLabel(QStringLiteral("This host: %1")
                     .arg(QString::fromStdString(describe_cpu_features(cpu_features()))),
                 host));
  layout->addStretch(1);
  tabs_->addTab(designer_, tr("&Designer"));
  tabs_->addTab(data_, tr("D&ata"));
  tabs_->addTab(launch_, tr("&Launch"));
  tabs_->addTab(dashboard_, tr("Dash&board"));
  tabs_->addTab(runs_, tr("&Runs"));
  tabs_->addTab(host, tr("&Host"));
  setCentralWidget(tabs_);

  auto designed_grid = [this](QString* error) -> std::optional<GridSpec> {
    if (!designer_->valid()) {
      *error = tr("the grid is not valid: %1").arg(designer_->error());
      return std::nullopt;
    }
    return designer_->spec();
  };
  launch_->set_grid_source(designed_grid);
  data_->set_grid_source(designed_grid);
  connect(data_, &DataPanel::use_in_grid, this,
          [this](const QString& train, const QString& val, const QString& tokenizer) {
            GridSpec g = designer_->spec();
            g.train_tokens = train.toStdString();
            g.val_tokens = val.toStdString();
            g.tokenizer = tokenizer.toStdString();
            designer_->set_spec(g);
            statusBar()->showMessage(tr("the grid's data now names %1").arg(train), 5000);
          });
  launch_->set_event_buffer(dashboard_->buffer());
  dashboard_->set_control(launch_->control());
  connect(launch_, &LaunchPanel::run_started, this, [this] {
    const GridSpec& g = launch_->run_grid();
    dashboard_->reset();
    dashboard_->set_status_text(tr("Local run %1.").arg(QString::fromStdString(g.name)));
    dashboard_->set_grid(g.num_paths(), g.outer_steps, g.shards_per_path);
    dashboard_->set_inner_steps_shown(g.inner_steps);
    // The data-parallel line needs the real vocabulary: the run takes it from the data.
    GridSpec sized = g;
    if (sized.vocab_from_data) {
      auto train = TokenFile::open(sized.train_tokens);
      if (train.is_ok()) sized.model.vocab_size = static_cast<int>(train->vocab_size());
    }
    dashboard_->set_data_parallel_bytes_per_step(
        static_cast<double>(estimate_grid(sized).data_parallel_bytes_per_outer_step));
    tabs_->setCurrentWidget(dashboard_);
    statusBar()->showMessage(tr("run started"), 5000);
  });
  connect(launch_, &LaunchPanel::serve_attach_started, this, [this] {
    dashboard_->reset();
    dashboard_->set_control(launch_->remote_control());
  });
  connect(launch_, &LaunchPanel::serve_attached, this, [this] {
    dashboard_->set_status_text(tr("Watching run %1 on %2; operator actions go to that server.")
                                    .arg(launch_->attach_settings().run_id)
                                    .arg(launch_->attach_address()));
    tabs_->setCurrentWidget(dashboard_);
    statusBar()->showMessage(tr("attached to %1").arg(launch_->attach_address()), 5000);
  });
  connect(launch_, &LaunchPanel::serve_detached, this, [this](bool, const QString& message) {
    dashboard_->set_control(launch_->control());
    dashboard_->set_status_text(tr("Not attached: %1").arg(message));
    statusBar()->showMessage(message, 10000);
  });
  connect(runs_, &RunsPanel::open_in_dashboard, this, [this](const RunRecord& run) {
    QString error;
    if (!replay_in_dashboard(run, &error)) statusBar()->showMessage(error, 10000);
  });
  connect(launch_, &LaunchPanel::run_finished, this, [this](bool, const QString& message) {
    statusBar()->showMessage(message);
    runs_->refresh();
  });

  auto action = [this](const QString& text, const QKeySequence& key, auto slot) {
    auto* a = new QAction(text, this);
    a->setShortcut(key);
    connect(a, &QAction::triggered, this, slot);
    addAction(a);
    return a;
  };
  action(tr("Open grid"), QKeySequence::Open, [this] { designer_->open_dialog(); });
  action(tr("Save grid"), QKeySequence::Save, [this] { designer_->save_dialog(); });
  action(tr("Start local run"), QKeySequence(Qt::Key_F5), [this] {
    QString error;
    if (!launch_->start_local(&error)) statusBar()->showMessage(error, 10000);
  });
  action(tr("Stop run"), QKeySequence(Qt::SHIFT | Qt::Key_F5), [this] { launch_->stop(); });
  action(tr("Quit"), QKeySequence::Quit, [this] { close(); });
  for (int i = 0; i < 6; ++i) {
    action(tr("Tab %1").arg(i + 1), QKeySequence(Qt::CTRL | static_cast<Qt::Key>(Qt::Key_1 + i)),
           [this, i] { tabs_->setCurrentIndex(i); });
  }
  resize(1280, 860);
  restore_settings();
}

MainWindow::~MainWindow() {
  dashboard_->set_control(nullptr);
}

bool MainWindow::replay_in_dashboard(const RunRecord& run, QString* error) {
  if (launch_->running() || launch_->attaching()) {
    *error =
        tr("the dashboard shows a live run: stop it or detach before opening %1").arg(run.label);
    return false;
  }
  auto events = load_run_events(run);
  if (!events.is_ok()) {
    *error =
        tr("cannot open %1: %2").arg(run.label, QString::fromStdString(events.status().message()));
    return false;
  }
  dashboard_->reset();
  auto grid = load_grid_spec(QDir(run.dir).filePath(QStringLiteral("grid.toml")).toStdString());
  if (grid.is_ok()) {
    dashboard_->set_grid(grid->num_paths(), grid->outer_steps, grid->shards_per_path);
    dashboard_->set_inner_steps_shown(grid->inner_steps);
  }
  const size_t count = events->size();
  dashboard_->set_status_text(tr("Replay of %1 (%2): recorded metrics and events; no live run "
                                 "to act on.")
                                  .arg(run.label, run.state));
  dashboard_->buffer()->push(std::move(*events));
  tabs_->setCurrentWidget(dashboard_);
  dashboard_->process_pending();
  statusBar()->showMessage(tr("%1: %2 recorded events and metrics").arg(run.label).arg(count),
                           10000);
  return true;
}

void MainWindow::restore_settings() {
  QSettings s;
  if (s.contains(QStringLiteral("window/geometry")))
    restoreGeometry(s.value(QStringLiteral("window/geometry")).toByteArray());
  if (s.contains(QStringLiteral("window/state")))
    restoreState(s.value(QStringLiteral("window/state")).toByteArray());
  tabs_->setCurrentIndex(s.value(QStringLiteral("window/tab"), 0).toInt());
  const QString grid = s.value(QStringLiteral("designer/file")).toString();
  if (!grid.isEmpty() && QFileInfo::exists(grid)) {
    QString error;
    if (!designer_->open_file(grid, &error)) statusBar()->showMessage(error, 10000);
  }
  runs_->set_root(s.value(QStringLiteral("runs/root"), QStringLiteral("runs")).toString());
  if (s.contains(QStringLiteral("launch/ssh_template"))) {
    launch_->set_ssh(s.value(QStringLiteral("launch/ssh_template")).toString(),
                     s.value(QStringLiteral("launch/ssh_host")).toString(),
                     s.value(QStringLiteral("launch/ssh_config")).toString());
  }
  if (s.contains(QStringLiteral("launch/attach_address"))) {
    AttachSettings a;  // never the token: it stays out of the settings file
    a.address = s.value(QStringLiteral("launch/attach_address")).toString().toStdString();
    a.tls = s.value(QStringLiteral("launch/attach_tls"), true).toBool();
    a.ca_file = s.value(QStringLiteral("launch/attach_ca")).toString().toStdString();
    a.run_id = s.value(QStringLiteral("launch/attach_run"), 1).toLongLong();
    launch_->set_attach_settings(a);
  }
  if (s.contains(QStringLiteral("data/out_dir"))) {
    DataPrepSettings d;
    d.brown = s.value(QStringLiteral("data/brown"), true).toBool();
    d.files = s.value(QStringLiteral("data/files")).toString();
    d.txt_mode = s.value(QStringLiteral("data/txt_mode"), d.txt_mode).toString();
    d.package = s.value(QStringLiteral("data/package")).toString();
    d.out_dir = s.value(QStringLiteral("data/out_dir")).toString();
    d.load_tokenizer = s.value(QStringLiteral("data/load_tokenizer")).toString();
    d.vocab_size = s.value(QStringLiteral("data/vocab_size"), d.vocab_size).toInt();
    d.model_type = s.value(QStringLiteral("data/model_type"), d.model_type).toString();
    d.val_fraction = s.value(QStringLiteral("data/val_fraction"), d.val_fraction).toDouble();
    data_->set_settings(d);
  }
  dashboard_->set_log_scale(s.value(QStringLiteral("dashboard/log_scale"), false).toBool());
  dashboard_->set_smoothing(s.value(QStringLiteral("dashboard/smoothing"), 1).toInt());
}

void MainWindow::save_settings() const {
  QSettings s;
  s.setValue(QStringLiteral("window/geometry"), saveGeometry());
  s.setValue(QStringLiteral("window/state"), saveState());
  s.setValue(QStringLiteral("window/tab"), tabs_->currentIndex());
  s.setValue(QStringLiteral("designer/file"), designer_->file());
  s.setValue(QStringLiteral("runs/root"), runs_->root());
  s.setValue(QStringLiteral("launch/ssh_template"), launch_->ssh_template());
  s.setValue(QStringLiteral("launch/ssh_host"), launch_->ssh_host());
  s.setValue(QStringLiteral("launch/ssh_config"), launch_->ssh_config());
  const AttachSettings a = launch_->attach_settings();
  s.setValue(QStringLiteral("launch/attach_address"), QString::fromStdString(a.address));
  s.setValue(QStringLiteral("launch/attach_tls"), a.tls);
  s.setValue(QStringLiteral("launch/attach_ca"), QString::fromStdString(a.ca_file));
  s.setValue(QStringLiteral("launch/attach_run"), static_cast<qlonglong>(a.run_id));
  const DataPrepSettings d = data_->settings();
  s.setValue(QStringLiteral("data/brown"), d.brown);
  s.setValue(QStringLiteral("data/files"), d.files);
  s.setValue(QStringLiteral("data/txt_mode"), d.txt_mode);
  s.setValue(QStringLiteral("data/package"), d.package);
  s.setValue(QStringLiteral("data/out_dir"), d.out_dir);
  s.setValue(QStringLiteral("data/load_tokenizer"), d.load_tokenizer);
  s.setValue(QStringLiteral("data/vocab_size"), d.vocab_size);
  s.setValue(QStringLiteral("data/model_type"), d.model_type);
  s.setValue(QStringLiteral("data/val_fraction"), d.val_fraction);
  s.setValue(QStringLiteral("dashboard/log_scale"), dashboard_->log_scale());
  s.setValue(QStringLiteral("dashboard/smoothing"), dashboard_->smoothing());
}

void MainWindow::closeEvent(QCloseEvent* event) {
  save_settings();
  launch_->stop();
  launch_->detach();
  event->accept();
}

}  // namespace dipaco::studio
