#include "launch_panel.h"

#include <QCheckBox>
#include <QClipboard>
#include <QFile>
#include <QFormLayout>
#include <QGroupBox>
#include <QGuiApplication>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QSpinBox>
#include <QTemporaryDir>
#include <QTimer>
#include <QVBoxLayout>
#include <cstdio>

#include "run/local_run.h"

namespace dipaco::studio {

QString ssh_worker_command(const QString& tmpl, const QString& host, const QString& config) {
  static const QRegularExpression plain(QStringLiteral("^[A-Za-z0-9_./-]+$"));
  QString quoted = config;
  if (!plain.match(config).hasMatch()) {
    quoted.replace(QStringLiteral("'"), QStringLiteral("'\\''"));
    quoted = QLatin1Char('\'') + quoted + QLatin1Char('\'');
  }
  QString out = tmpl;
  out.replace(QStringLiteral("{host}"), host);
  out.replace(QStringLiteral("{config}"), quoted);
  return out;
}

LaunchPanel::LaunchPanel(QWidget* parent) : QWidget(parent) {
  auto* top = new QVBoxLayout(this);

  auto* local = new QGroupBox(tr("Local run (dipaco run on this machine)"), this);
  auto* local_layout = new QVBoxLayout(local);
  auto* form = new QFormLayout;
  workers_ = new QSpinBox(this);
  workers_->setRange(0, 256);
  workers_->setSpecialValueText(tr("as in the grid"));
  form->addRow(tr("local workers"), workers_);
  threads_ = new QSpinBox(this);
  threads_->setRange(0, 1024);
  threads_->setSpecialValueText(tr("as in the grid (0 = all cores)"));
  form->addRow(tr("CPU threads in all"), threads_);
  form->addRow(tr("backend"), new QLabel(tr("CPU (local workers of this build train on the "
                                            "CPU; GPUs join as remote workers)"),
                                         this));
  run_dir_ = new QLineEdit(this);
  run_dir_->setPlaceholderText(tr("as in the grid (run.dir)"));
  form->addRow(tr("run directory"), run_dir_);
  local_layout->addLayout(form);
  auto* buttons = new QHBoxLayout;
  start_ = new QPushButton(tr("Start local run (F5)"), this);
  stop_button_ = new QPushButton(tr("Stop"), this);
  stop_button_->setEnabled(false);
  buttons->addWidget(start_);
  buttons->addWidget(stop_button_);
  status_ = new QLabel(tr("Idle. The grid comes from the Designer tab."), this);
  status_->setObjectName(QStringLiteral("launch.status"));
  status_->setWordWrap(true);
  buttons->addWidget(status_, 1);
  local_layout->addLayout(buttons);
  output_ = new QPlainTextEdit(this);
  output_->setReadOnly(true);
  output_->setMaximumBlockCount(2000);
  output_->setPlaceholderText(tr("The run's output appears here."));
  local_layout->addWidget(output_, 1);
  top->addWidget(local, 3);
  connect(start_, &QPushButton::clicked, this, [this] {
    QString error;
    if (!start_local(&error)) {
      status_->setText(error);
      status_->setStyleSheet(QStringLiteral("color: #d03030;"));
    }
  });
  connect(stop_button_, &QPushButton::clicked, this, &LaunchPanel::stop);

  auto* remote = new QGroupBox(tr("Remote workers over SSH"), this);
  auto* remote_form = new QFormLayout(remote);
  ssh_template_ = new QLineEdit(QStringLiteral("ssh {host} dipaco-worker --config {config}"), this);
  ssh_host_ = new QLineEdit(QStringLiteral("gpu-host-1"), this);
  ssh_config_ = new QLineEdit(QStringLiteral("/etc/dipaco/worker.toml"), this);
  ssh_command_ = new QLineEdit(this);
  ssh_command_->setObjectName(QStringLiteral("launch.ssh_command"));
  ssh_command_->setReadOnly(true);
  auto* copy = new QPushButton(tr("Copy"), this);
  auto* command_row = new QHBoxLayout;
  command_row->addWidget(ssh_command_, 1);
  command_row->addWidget(copy);
  remote_form->addRow(tr("command template"), ssh_template_);
  remote_form->addRow(tr("host"), ssh_host_);
  remote_form->addRow(tr("worker config on the host"), ssh_config_);
  remote_form->addRow(tr("command to run"), command_row);
  for (QLineEdit* e : {ssh_template_, ssh_host_, ssh_config_})
    connect(e, &QLineEdit::textChanged, this, &LaunchPanel::update_ssh);
  connect(copy, &QPushButton::clicked, this,
          [this] { QGuiApplication::clipboard()->setText(ssh_command_->text()); });
  top->addWidget(remote);

  auto* attach = new QGroupBox(tr("Attach to a running dipaco serve"), this);
  auto* attach_form = new QFormLayout(attach);
  attach_address_ = new QLineEdit(QStringLiteral("localhost:50051"), this);
  attach_tls_ = new QCheckBox(tr("TLS"), this);
  attach_tls_->setChecked(true);
  attach_token_ = new QLineEdit(this);
  attach_token_->setEchoMode(QLineEdit::Password);
  attach_token_->setPlaceholderText(tr("operator token"));
  auto* attach_button = new QPushButton(tr("Attach"), this);
  attach_status_ = new QLabel(this);
  attach_status_->setWordWrap(true);
  attach_form->addRow(tr("address"), attach_address_);
  attach_form->addRow(QString(), attach_tls_);
  attach_form->addRow(tr("token"), attach_token_);
  attach_form->addRow(QString(), attach_button);
  attach_form->addRow(attach_status_);
  connect(attach_button, &QPushButton::clicked, this, [this] {
    attach_status_->setText(attach_message());
    attach_status_->setStyleSheet(QStringLiteral("color: #d03030;"));
  });
  top->addWidget(attach);

  output_timer_ = new QTimer(this);
  output_timer_->setInterval(200);
  connect(output_timer_, &QTimer::timeout, this, &LaunchPanel::poll_output);
  update_ssh();
}

LaunchPanel::~LaunchPanel() {
  if (thread_.joinable()) {
    control_.detach();
    stop_.store(true);
    thread_.join();
  }
}

bool LaunchPanel::start_local(QString* error) {
  if (running_) {
    *error = tr("a run is already running; stop it first");
    return false;
  }
  if (!grid_source_) {
    *error = tr("no grid: open or design one in the Designer tab");
    return false;
  }
  std::optional<GridSpec> grid = grid_source_(error);
  if (!grid) return false;
  if (workers_->value() > 0) grid->workers = workers_->value();
  if (threads_->value() > 0) grid->threads = threads_->value();
  if (!run_dir_->text().isEmpty()) grid->dir = run_dir_->text().toStdString();
  if (Status s = grid->validate(); !s) {
    *error = QString::fromStdString(s.message());
    return false;
  }
  if (thread_.joinable()) thread_.join();  // the previous run has finished
  output_dir_ = std::make_unique<QTemporaryDir>();
  output_path_ = output_dir_->filePath(QStringLiteral("output.txt"));
  FILE* out = std::fopen(output_path_.toLocal8Bit().constData(), "w");
  if (out == nullptr) {
    *error = tr("cannot create %1").arg(output_path_);
    return false;
  }
  output_pos_ = 0;
  output_->clear();
  run_grid_ = *grid;
  stop_.store(false);
  running_ = true;
  start_->setEnabled(false);
  stop_button_->setEnabled(true);
  status_->setStyleSheet(QString());
  status_->setText(tr("Running %1 in %2 …")
                       .arg(QString::fromStdString(grid->name), QString::fromStdString(grid->dir)));
  output_timer_->start();
  emit run_started();
  std::shared_ptr<RunEventBuffer> buffer = buffer_;
  thread_ = std::thread([this, grid = *grid, out, buffer] {
    LocalRunOptions options;
    options.out = out;
    options.stop = &stop_;
    options.on_event = [this, buffer](const RunEvent& e) {
      if (e.kind == EventKind::kRunFinished) control_.closing();
      if (buffer) buffer->push(e);
    };
    options.on_started = [this](Coordinator* c, int64_t run_id) { control_.attach(c, run_id); };
    auto result = run_local(grid, options);
    control_.detach();
    std::fclose(out);
    bool ok = result.is_ok();
    QString message;
    if (!ok) {
      message = QString::fromStdString(result.status().message());
    } else if (result->interrupted) {
      message = tr("stopped; start again with the same grid to resume");
    } else {
      message = tr("finished: routed validation loss %1 in %2 s")
                    .arg(result->routed_val_loss, 0, 'f', 4)
                    .arg(result->seconds, 0, 'f', 1);
    }
    QMetaObject::invokeMethod(
        this, [this, ok, message] { finished(ok, message); }, Qt::QueuedConnection);
  });
  return true;
}

void LaunchPanel::stop() {
  if (!running_) return;
  control_.detach();
  stop_.store(true);
  status_->setText(tr("Stopping …"));
}

void LaunchPanel::finished(bool ok, const QString& message) {
  if (thread_.joinable()) thread_.join();
  running_ = false;
  poll_output();
  output_timer_->stop();
  start_->setEnabled(true);
  stop_button_->setEnabled(false);
  status_->setText(message);
  status_->setStyleSheet(ok ? QString() : QStringLiteral("color: #d03030;"));
  emit run_finished(ok, message);
}

void LaunchPanel::poll_output() {
  if (output_path_.isEmpty()) return;
  QFile f(output_path_);
  if (!f.open(QIODevice::ReadOnly)) return;
  if (!f.seek(output_pos_)) return;
  const QByteArray more = f.readAll();
  // Only whole lines: the run may be writing one right now.
  const qsizetype end = more.lastIndexOf('\n');
  if (end < 0) return;
  output_pos_ += end + 1;
  output_->appendPlainText(QString::fromUtf8(more.left(end)));
}

QString LaunchPanel::status_text() const {
  return status_->text();
}

QString LaunchPanel::output_text() const {
  return output_->toPlainText();
}

void LaunchPanel::set_workers(int workers) {
  workers_->setValue(workers);
}

void LaunchPanel::set_run_dir(const QString& dir) {
  run_dir_->setText(dir);
}

QString LaunchPanel::ssh_command() const {
  return ssh_command_->text();
}

void LaunchPanel::set_ssh(const QString& tmpl, const QString& host, const QString& config) {
  ssh_template_->setText(tmpl);
  ssh_host_->setText(host);
  ssh_config_->setText(config);
}

QString LaunchPanel::ssh_template() const {
  return ssh_template_->text();
}

QString LaunchPanel::ssh_host() const {
  return ssh_host_->text();
}

QString LaunchPanel::ssh_config() const {
  return ssh_config_->text();
}

QString LaunchPanel::attach_address() const {
  return attach_address_->text();
}

void LaunchPanel::set_attach_address(const QString& address) {
  attach_address_->setText(address);
}

void LaunchPanel::update_ssh() {
  ssh_command_->setText(
      ssh_worker_command(ssh_template_->text(), ssh_host_->text(), ssh_config_->text()));
}

QString LaunchPanel::attach_message() const {
  return tr("Attach is not available in this build: it has no client for the dipaco serve RPC "
            "service yet (%1%2). Start a local run above, or run the CLI next to the server.")
      .arg(attach_address_->text(), attach_tls_->isChecked() ? tr(", TLS") : QString());
}

}  // namespace dipaco::studio
