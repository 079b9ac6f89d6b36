// GridDesignerPanel: edits a GridSpec — run, model, inner/outer optimizer, compression, the
// levels × modules grid (block ranges, path-specific levels), routing and data — and shows live
// estimates (grid_estimates.h). All rules live in GridSpec: after every edit the panel copies
// the widgets into its spec, calls validate(), and marks the field the error names (red frame
// and tooltip, message under the form). Opens and saves the same TOML as `dipaco run`.
// With the vocabulary taken from the data, estimates use data.train's vocabulary when the file
// opens (else ModelConfig's default) and say which.
#pragma once

#include <QDateTime>
#include <QHash>
#include <QString>
#include <QWidget>

#include "algo/grid_spec.h"
#include "grid_estimates.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QSpinBox;
class QTableWidget;

namespace dipaco::studio {

class GridDesignerPanel : public QWidget {
  Q_OBJECT

 public:
  explicit GridDesignerPanel(QWidget* parent = nullptr);

  // The spec as edited (valid or not) and its validation status.
  const GridSpec& spec() const { return spec_; }
  bool valid() const { return error_.isEmpty(); }
  QString error() const { return error_; }
  // The key the current error names ("model.d_model"), "" when valid.
  QString error_key() const { return error_key_; }
  // The widget marked for the current error (null when valid or no field matches).
  QWidget* error_widget() const { return error_widget_; }
  const GridEstimates& estimates() const { return estimates_; }
  QString estimates_text() const;

  // Shows `spec` in the widgets (then validates).
  void set_spec(const GridSpec& spec);
  // Opens/saves grid TOML; false with a message in *error.
  bool open_file(const QString& path, QString* error);
  bool save_file(const QString& path, QString* error);
  QString file() const { return file_; }

  // Field widgets by TOML key ("model.d_model"); levels live in levels_table().
  QWidget* field(const QString& key) const { return fields_.value(key); }
  QTableWidget* levels_table() const { return levels_; }
  void add_level();
  void remove_last_level();

 signals:
  // After every edit, with the new validity.
  void spec_changed(bool valid);

 public slots:
  void open_dialog();
  void save_dialog();

 private:
  QSpinBox* int_field(const QString& key, int min, int max);
  QDoubleSpinBox* double_field(const QString& key, double min, double max, int decimals);
  QLineEdit* text_field(const QString& key);
  void set_level_row(int row, const GridLevel& level);
  void read_widgets();
  void refresh();
  void mark_error();
  // The vocabulary of data.train when the model takes it from the data (cached by file size
  // and modification time); 0 when the file cannot be opened.
  int data_vocab(const std::string& path);

  GridSpec spec_;
  GridEstimates estimates_;
  QString error_, error_key_, file_;
  QWidget* error_widget_ = nullptr;
  bool loading_ = false;
  QString vocab_note_;
  QString vocab_file_;
  qint64 vocab_size_bytes_ = -1;
  QDateTime vocab_mtime_;
  int vocab_cached_ = 0;
  QHash<QString, QWidget*> fields_;
  QTableWidget* levels_ = nullptr;
  QLabel* error_label_ = nullptr;
  QLabel* estimates_label_ = nullptr;
  QLabel* paths_label_ = nullptr;
};

}  // namespace dipaco::studio
