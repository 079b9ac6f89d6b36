// DashboardPanel: the live view of one run, fed by RunEvents.
//
// Threading: events arrive on any thread through buffer() (RunEventBuffer::push). Nothing is
// drawn per event: a QTimer on the GUI thread (frame_interval_ms, 50 ms = 20 fps) drains the
// buffer, folds the events into the panel's series and replots only the plots that changed.
//
// Plots: per-path train loss (x = outer step + 0.5, one point per task) and validation loss
// (x = outer step; "routed" for routed_val_loss), with path toggles, log scale and moving-average
// smoothing; communication volume (bytes_up + bytes_down per outer step as bars, cumulative as a
// line, and the data-parallel equivalent when set_data_parallel_bytes_per_step() was given);
// lease/operator event timeline; path × outer-step progress heatmap (0 = not started,
// 0.5 = leased, 1 = every shard done). Worker table: worker, host, device, state, task,
// tokens/s, last heartbeat (polled from the RunControl when one is attached, else the last event's
// time). Operator actions call the RunControl off the GUI thread (one call at a time; a click while
// one is in flight is refused with a message), and its replies appear in the status line. The
// worker poll uses the same thread. Frames while the panel is hidden only fold events; the
// plots are redrawn when it shows again.
#pragma once

#include <QMap>
#include <QString>
#include <QWidget>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/coordinator.h"
#include "coordinator/run_event.h"
#include "run_event_buffer.h"

class QCheckBox;
class QCustomPlot;
class QCPBars;
class QCPColorMap;
class QCPGraph;
class QLabel;
class QListWidget;
class QPlainTextEdit;
class QPushButton;
class QSpinBox;
class QTableWidget;
class QTimer;

namespace dipaco::studio {

class RunControl;

class DashboardPanel : public QWidget {
  Q_OBJECT

 public:
  explicit DashboardPanel(QWidget* parent = nullptr);
  // Waits for a RunControl call in flight.
  ~DashboardPanel() override;

  std::shared_ptr<RunEventBuffer> buffer() const { return buffer_; }
  // Not owned; null detaches (after waiting for a call in flight). The panel polls
  // control->workers() about once a second.
  void set_control(RunControl* control);
  // The run's shape, for the heatmap (optional: the panel also grows from the events).
  void set_grid(int paths, uint64_t outer_steps, int shards_per_path);
  void set_data_parallel_bytes_per_step(double bytes);
  // The H shown next to "Change H" (the run's current inner steps).
  void set_inner_steps_shown(uint32_t inner_steps);
  // Forgets every series (a new run).
  void reset();
  // The status line: what the panel shows now ("attached to ...", "replay of ...").
  void set_status_text(const QString& text);
  QString status_text() const;
  void set_frame_interval_ms(int ms);
  int frame_interval_ms() const;

  // Drains the buffer and redraws what changed (the frame timer calls this).
  void process_pending();

  // View options (also in the panel's controls).
  void set_path_visible(int path, bool visible);
  void set_log_scale(bool on);
  void set_smoothing(int window);
  bool log_scale() const;
  int smoothing() const { return smoothing_; }

  // Inspection (tests, status line).
  QCustomPlot* loss_plot() const { return loss_plot_; }
  QCustomPlot* comm_plot() const { return comm_plot_; }
  QCustomPlot* timeline_plot() const { return timeline_plot_; }
  QCustomPlot* heatmap_plot() const { return heatmap_plot_; }
  QTableWidget* worker_table() const { return workers_; }
  int train_points(int path) const;
  int val_points(int path) const;
  int routed_points() const;
  int timeline_points() const;
  int comm_rounds() const;
  double heat(int path, uint64_t outer_step) const;
  uint64_t events_applied() const { return applied_; }
  uint64_t frames() const { return frames_; }
  // Longest and total time spent in process_pending() (ms): what a frame costs the GUI thread.
  double max_frame_ms() const { return max_frame_ms_; }
  double total_frame_ms() const { return total_frame_ms_; }

 signals:
  // After a frame that applied events.
  void updated();

 protected:
  void showEvent(QShowEvent* event) override;

 private:
  struct PathSeries {
    std::vector<double> train_x, train_y, val_x, val_y;
    QCPGraph* train = nullptr;
    QCPGraph* val = nullptr;
    bool dirty = false;
    bool visible = true;
  };
  struct WorkerRow {
    QString state = QStringLiteral("idle");
    QString task;
    int64_t lease_id = 0;
    double tokens_per_second = 0;
    int64_t last_seen_ms = 0;
    QString host;
    QString device;
  };
  struct Cell {
    int leased = 0;
    int done = 0;
  };

  void apply(const RunEvent& e);
  PathSeries& path(uint32_t id);
  void redraw_losses();
  void redraw_comm();
  void redraw_heatmap();
  void redraw_workers();
  void poll_workers();
  QString selected_worker() const;
  void report(const QString& what, bool ok, const QString& message);
  // Runs `work` on the control thread; the closure it returns then runs on the GUI thread.
  // False (nothing run) while another call is in flight or no control is attached.
  bool off_gui(std::function<std::function<void()>(RunControl*)> work);
  // An operator action: `call` off the GUI thread, its reply in the status line.
  void operator_action(const QString& what, std::function<Result<OperatorReply>(RunControl*)> call);
  void join_control_thread();

  std::shared_ptr<RunEventBuffer> buffer_ = std::make_shared<RunEventBuffer>();
  RunControl* control_ = nullptr;
  std::thread control_thread_;
  bool control_busy_ = false;
  QTimer* frame_timer_ = nullptr;
  QTimer* poll_timer_ = nullptr;

  std::map<uint32_t, PathSeries> paths_;
  std::vector<double> routed_x_, routed_y_;
  QCPGraph* routed_ = nullptr;
  bool routed_dirty_ = false;
  std::map<uint64_t, double> round_bytes_;
  bool comm_dirty_ = false;
  double dp_per_step_ = 0;
  std::map<std::pair<uint32_t, uint64_t>, Cell> cells_;
  std::map<std::pair<uint32_t, uint64_t>, std::string> task_worker_;  // (path, step) -> worker
  int grid_paths_ = 0;
  uint64_t grid_steps_ = 0;
  int shards_per_path_ = 1;
  bool heat_dirty_ = false;
  std::map<std::string, WorkerRow> worker_rows_;
  bool workers_dirty_ = false;
  int64_t first_time_ms_ = -1;
  int timeline_count_ = 0;
  bool timeline_dirty_ = false;
  int smoothing_ = 1;
  uint64_t applied_ = 0, frames_ = 0;
  double max_frame_ms_ = 0, total_frame_ms_ = 0;
  QStringList log_lines_;

  QCustomPlot* loss_plot_ = nullptr;
  QCustomPlot* comm_plot_ = nullptr;
  QCustomPlot* timeline_plot_ = nullptr;
  QCustomPlot* heatmap_plot_ = nullptr;
  QCPBars* round_bars_ = nullptr;
  QCPGraph* cumulative_ = nullptr;
  QCPGraph* dp_line_ = nullptr;
  std::vector<QCPGraph*> timeline_graphs_;
  QCPColorMap* heatmap_ = nullptr;
  QListWidget* path_list_ = nullptr;
  QCheckBox* log_scale_ = nullptr;
  QSpinBox* smoothing_box_ = nullptr;
  QTableWidget* workers_ = nullptr;
  QPlainTextEdit* log_ = nullptr;
  QLabel* status_ = nullptr;
  QSpinBox* inner_steps_ = nullptr;
  std::vector<QPushButton*> action_buttons_;
};

}  // namespace dipaco::studio
