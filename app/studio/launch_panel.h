// LaunchPanel: starts runs.
//   Local: run_local() of the designer's grid on a std::thread (workers/threads/run directory
//     overridable here). Its RunEvents go to the event buffer (the dashboard's); its
//     Coordinator is reachable through control() while the run lives; its text output goes
//     to a temporary file shown in the panel. Stop asks the run to stop (rerunning resumes).
//   Remote workers: an SSH command template ({host}, {config}) and the exact resulting
//     `dipaco-worker --config ...` command, copyable.
//   Attach to a running `dipaco serve` (address, TLS + CA file, operator token, run id): a
//     ServeAttachment watches the run on its own thread into the same event buffer, and
//     remote_control() carries the dashboard's operator actions over the operator RPCs.
//     Failures are shown in the form in plain words (attach_errors.h). A local run and an
//     attachment exclude each other (both feed the one dashboard).
#pragma once

#include <QString>
#include <QWidget>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "algo/grid_spec.h"
#include "attach_settings.h"
#include "run_control.h"
#include "run_event_buffer.h"
#include "serve_attachment.h"

class QCheckBox;
class QFile;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QComboBox;
class QSpinBox;
class QTemporaryDir;
class QTimer;

namespace dipaco::studio {

// The template with {host} and {config} replaced; the config path is single-quoted for the
// shell when it holds anything but [A-Za-z0-9_./-].
QString ssh_worker_command(const QString& tmpl, const QString& host, const QString& config);

class LaunchPanel : public QWidget {
  Q_OBJECT

 public:
  explicit LaunchPanel(QWidget* parent = nullptr);
  // Stops a run in flight and waits for it.
  ~LaunchPanel() override;

  // Where Start takes the grid from (the designer); returns nullopt with *error when invalid.
  using GridSource = std::function<std::optional<GridSpec>(QString* error)>;
  void set_grid_source(GridSource source) { grid_source_ = std::move(source); }
  void set_event_buffer(std::shared_ptr<RunEventBuffer> buffer) { buffer_ = std::move(buffer); }
  RunControl* control() { return &control_; }

  // Starts a local run of the grid source's grid; false with *error when it cannot start.
  bool start_local(QString* error);
  // Asks the run to stop (it finishes its current step).
  void stop();
  bool running() const { return running_; }
  // The grid of the last run started (with this panel's overrides applied).
  const GridSpec& run_grid() const { return run_grid_; }
  QString status_text() const;
  QString output_text() const;

  // Local overrides (0 / empty = as in the grid).
  void set_workers(int workers);
  void set_run_dir(const QString& dir);

  // Remote.
  QString ssh_command() const;
  void set_ssh(const QString& tmpl, const QString& host, const QString& config);
  QString ssh_template() const;
  QString ssh_host() const;
  QString ssh_config() const;
  QString attach_address() const;
  void set_attach_address(const QString& address);

  // Attach (the form's values): false with *error when it cannot start; else the answer comes
  // as serve_attached() or serve_detached(message).
  AttachSettings attach_settings() const;
  void set_attach_settings(const AttachSettings& settings);
  bool attach(QString* error);
  void detach();
  bool attaching() const { return serve_->active(); }
  RunControl* remote_control() { return serve_->control(); }
  // The attach form's status line (connecting, watching, or what failed and what to check).
  QString attach_status() const;

 signals:
  void run_started();
  void run_finished(bool ok, const QString& message);
  // attach() started (the dashboard should forget the last run and take remote_control()).
  void serve_attach_started();
  void serve_attached();
  // The attachment ended: detached, the server stopped, or it failed (message says why).
  void serve_detached(bool ok, const QString& message);

 private:
  void finished(bool ok, const QString& message);
  void poll_output();
  void update_ssh();
  void show_attach_status(const QString& text, bool ok);

  GridSource grid_source_;
  std::shared_ptr<RunEventBuffer> buffer_;
  LocalRunControl control_;
  GridSpec run_grid_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool running_ = false;
  QString output_path_;
  qint64 output_pos_ = 0;
  std::unique_ptr<QTemporaryDir> output_dir_;

  QSpinBox* workers_ = nullptr;
  QComboBox* backend_ = nullptr;         // auto | cpu | cuda: what the local workers train on
  QSpinBox* gpus_per_worker_ = nullptr;  // > 1: each local worker an island of that many GPUs
  QSpinBox* threads_ = nullptr;
  QLineEdit* run_dir_ = nullptr;
  QPushButton* start_ = nullptr;
  QPushButton* stop_button_ = nullptr;
  QLabel* status_ = nullptr;
  QPlainTextEdit* output_ = nullptr;
  QTimer* output_timer_ = nullptr;
  QLineEdit* ssh_template_ = nullptr;
  QLineEdit* ssh_host_ = nullptr;
  QLineEdit* ssh_config_ = nullptr;
  QLineEdit* ssh_command_ = nullptr;
  ServeAttachment* serve_ = nullptr;
  QLineEdit* attach_address_ = nullptr;
  QCheckBox* attach_tls_ = nullptr;
  QLineEdit* attach_ca_ = nullptr;
  QLineEdit* attach_token_ = nullptr;
  QSpinBox* attach_run_ = nullptr;
  QPushButton* attach_button_ = nullptr;
  QPushButton* detach_button_ = nullptr;
  QLabel* attach_status_ = nullptr;
};

}  // namespace dipaco::studio
