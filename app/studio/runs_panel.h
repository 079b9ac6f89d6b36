// RunsPanel: the run directories under a root folder (those holding run.json or
// metrics.jsonl). Selecting one shows its validation curves per path (and routed) and its
// summary.md; selecting two compares their headline curves (routed validation loss, else the
// mean over paths). The plot exports as CSV or PNG.
#pragma once

#include <QString>
#include <QStringList>
#include <QWidget>

class QCustomPlot;
class QLineEdit;
class QListWidget;
class QPlainTextEdit;

namespace dipaco::studio {

class RunsPanel : public QWidget {
  Q_OBJECT

 public:
  explicit RunsPanel(QWidget* parent = nullptr);

  void set_root(const QString& root);
  QString root() const;
  // Rescans the root; returns the run directories found (names under the root, sorted).
  QStringList refresh();
  // Shows one run (a directory path); false when it has no metrics.
  bool open_run(const QString& dir);
  // Compares two runs' headline validation curves.
  bool compare(const QString& a, const QString& b);

  QCustomPlot* plot() const { return plot_; }
  QListWidget* list() const { return list_; }
  QString summary_text() const;

 private:
  void selection_changed();
  void choose_root();

  QLineEdit* root_ = nullptr;
  QListWidget* list_ = nullptr;
  QCustomPlot* plot_ = nullptr;
  QPlainTextEdit* summary_ = nullptr;
};

}  // namespace dipaco::studio
