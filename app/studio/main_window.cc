#include "main_window.h"

#include <qcustomplot.h>

#include <QLabel>
#include <QTabWidget>
#include <QVBoxLayout>

#include "backend/cpu/cpu_features.h"

namespace dipaco::studio {

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  setWindowTitle(QStringLiteral("dipaco studio %1").arg(QStringLiteral(DIPACO_VERSION)));
  auto* tabs = new QTabWidget(this);
  auto* host = new QWidget(tabs);
  auto* layout = new QVBoxLayout(host);
  layout->addWidget(new QLabel(
      QStringLiteral("This host: %1\n\nThe grid designer, launcher and live dashboard are not in "
                     "this build yet; use the dipaco CLI.")
          .arg(QString::fromStdString(describe_cpu_features(cpu_features()))),
      host));
  tabs->addTab(host, tr("Host"));
  setCentralWidget(tabs);
  resize(960, 640);
}

}  // namespace dipaco::studio
