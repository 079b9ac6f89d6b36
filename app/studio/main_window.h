// The studio's main window. Panels (grid designer, launch, dashboard, runs) are separate
// widget classes added as tabs; this class only arranges them.
#pragma once

#include <QMainWindow>

namespace dipaco::studio {

class MainWindow : public QMainWindow {
  Q_OBJECT

 public:
  explicit MainWindow(QWidget* parent = nullptr);
};

}  // namespace dipaco::studio
