#include "launch_panel.h"

#include <QCheckBox>
#include <QClipboard>
#include <QComboBox>
#include <QFile>
#include <QFileDialog>
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
  backend_ = new QComboBox(this);
  backend_->setObjectName(QStringLiteral("launch.backend"));
  backend_->addItem(tr("auto: a GPU when this machine has one, else the CPU"),
                    QStringLiteral("auto"));
  backend_->addItem(tr("CPU"), QStringLiteral("cpu"));
  backend_->addItem(tr("CUDA: the local workers spread over this machine's GPUs"),
                    QStringLiteral("cuda"));
  form->addRow(tr("backend"), backend_);
  gpus_per_worker_ = new QSpinBox(this);
  gpus_per_worker_->setObjectName(QStringLiteral("launch.gpus_per_worker"));
  gpus_per_worker_->setRange(1, 64);
  gpus_per_worker_->setToolTip(
      tr("More than 1: each local worker trains its path on that many GPUs at once (an NCCL "
         "island, data parallel inside the path). Needs workers x GPUs per worker GPUs."));
  form->addRow(tr("GPUs per worker"), gpus_per_worker_);
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
  serve_ = new ServeAttachment(this);
  // dipaco serve's own default --address (app/cli/cmd_serve.cc).
  attach_address_ = new QLineEdit(QStringLiteral("127.0.0.1:7443"), this);
  attach_address_->setToolTip(tr("host:port that dipaco serve prints (\"listening on ...\")"));
  attach_tls_ = new QCheckBox(tr("TLS (untick for dipaco serve --insecure)"), this);
  attach_tls_->setChecked(true);
  attach_ca_ = new QLineEdit(this);
  attach_ca_->setPlaceholderText(
      tr("CA file (PEM) that signed the server's certificate; "
         "empty = system roots"));
  auto* browse_ca = new QPushButton(tr("Browse…"), this);
  auto* ca_row = new QHBoxLayout;
  ca_row->addWidget(attach_ca_, 1);
  ca_row->addWidget(browse_ca);
  attach_token_ = new QLineEdit(this);
  attach_token_->setEchoMode(QLineEdit::Password);
  attach_token_->setPlaceholderText(tr("operator token (dipaco serve --operator-token-file)"));
  attach_run_ = new QSpinBox(this);
  attach_run_->setRange(1, 1 << 30);
  attach_run_->setToolTip(tr("dipaco serve prints \"run N from ...\""));
  attach_button_ = new QPushButton(tr("Attach"), this);
  detach_button_ = new QPushButton(tr("Detach"), this);
  detach_button_->setEnabled(false);
  auto* attach_buttons = new QHBoxLayout;
  attach_buttons->addWidget(attach_button_);
  attach_buttons->addWidget(detach_button_);
  attach_buttons->addStretch(1);
  attach_status_ = new QLabel(tr("Not attached."), this);
  attach_status_->setObjectName(QStringLiteral("launch.attach_status"));
  attach_status_->setWordWrap(true);
  attach_status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  attach_form->addRow(tr("address"), attach_address_);
  attach_form->addRow(QString(), attach_tls_);
  attach_form->addRow(tr("CA file"), ca_row);
  attach_form->addRow(tr("token"), attach_token_);
  attach_form->addRow(tr("run"), attach_run_);
  attach_form->addRow(QString(), attach_buttons);
  attach_form->addRow(attach_status_);
  connect(attach_tls_, &QCheckBox::toggled, attach_ca_, &QWidget::setEnabled);
  connect(browse_ca, &QPushButton::clicked, this, [this] {
    const QString file = QFileDialog::getOpenFileName(this, tr("CA certificate"), QString(),
                                                      tr("PEM (*.pem *.crt);;All files (*)"));
    if (!file.isEmpty()) attach_ca_->setText(file);
  });
  connect(attach_button_, &QPushButton::clicked, this, [this] {
    QString error;
    if (!this->attach(&error)) show_attach_status(error, false);
  });
  connect(detach_button_, &QPushButton::clicked, this, &LaunchPanel::detach);
  connect(serve_, &ServeAttachment::connected, this, [this] {
    show_attach_status(tr("Watching run %1 on %2: events go to the Dashboard; its operator "
                          "actions go to this server.")
                           .arg(attach_run_->value())
                           .arg(attach_address_->text()),
                       true);
    emit serve_attached();
  });
  auto ended = [this](bool ok, const QString& message) {
    attach_button_->setEnabled(true);
    detach_button_->setEnabled(false);
    start_->setEnabled(!running_);
    show_attach_status(message, ok);
    emit serve_detached(ok, message);
  };
  connect(serve_, &ServeAttachment::failed, this,
          [ended](const QString& message) { ended(false, message); });
  connect(serve_, &ServeAttachment::ended, this,
          [ended](const QString& message) { ended(true, message); });
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
  if (serve_->active()) {
    *error = tr("attached to %1: detach first (a local run and an attachment share the "
                "dashboard)")
                 .arg(attach_address_->text());
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
  attach_button_->setEnabled(false);
  stop_button_->setEnabled(true);
  status_->setStyleSheet(QString());
  status_->setText(tr("Running %1 in %2 …")
                       .arg(QString::fromStdString(grid->name), QString::fromStdString(grid->dir)));
  output_timer_->start();
  emit run_started();
  std::shared_ptr<RunEventBuffer> buffer = buffer_;
  const std::string backend = backend_->currentData().toString().toStdString();
  const int gpus_per_worker = gpus_per_worker_->value();
  thread_ = std::thread([this, grid = *grid, out, buffer, backend, gpus_per_worker] {
    LocalRunOptions options;
    (void)parse_backend_name(backend, &options.backend);  // one of the combo's own values
    options.gpus_per_worker = gpus_per_worker;
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
  attach_button_->setEnabled(true);
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

AttachSettings LaunchPanel::attach_settings() const {
  AttachSettings a;
  a.address = attach_address_->text().trimmed().toStdString();
  a.tls = attach_tls_->isChecked();
  a.ca_file = attach_ca_->text().trimmed().toStdString();
  a.token = attach_token_->text().trimmed().toStdString();
  a.run_id = attach_run_->value();
  return a;
}

void LaunchPanel::set_attach_settings(const AttachSettings& settings) {
  attach_address_->setText(QString::fromStdString(settings.address));
  attach_tls_->setChecked(settings.tls);
  attach_ca_->setText(QString::fromStdString(settings.ca_file));
  attach_token_->setText(QString::fromStdString(settings.token));
  attach_run_->setValue(static_cast<int>(settings.run_id));
}

bool LaunchPanel::attach(QString* error) {
  if (running_) {
    *error = tr("a local run is running: stop it before attaching (both feed the dashboard)");
    return false;
  }
  if (!serve_->attach(attach_settings(), buffer_, error)) return false;
  emit serve_attach_started();
  attach_button_->setEnabled(false);
  detach_button_->setEnabled(true);
  start_->setEnabled(false);
  show_attach_status(tr("Connecting to %1 …").arg(attach_address_->text()), true);
  return true;
}

void LaunchPanel::detach() {
  serve_->detach();
}

QString LaunchPanel::attach_status() const {
  return attach_status_->text();
}

void LaunchPanel::show_attach_status(const QString& text, bool ok) {
  attach_status_->setText(text);
  attach_status_->setStyleSheet(ok ? QString() : QStringLiteral("color: #d03030;"));
}

}  // namespace dipaco::studio
