#include <QApplication>
#include <QIcon>

#include "backend/backend_factory.h"
#include "main_window.h"

int main(int argc, char** argv) {
  dipaco::prepare_gpu_environment();  // before QApplication starts any thread
  QApplication app(argc, argv);
  QApplication::setApplicationName(QStringLiteral("dipaco-studio"));
  QApplication::setOrganizationName(QStringLiteral("dipaco"));
  QApplication::setDesktopFileName(QStringLiteral("dipaco-studio"));
  QApplication::setWindowIcon(QIcon::fromTheme(QStringLiteral("dipaco-studio")));
  dipaco::studio::MainWindow window;
  window.show();
  return QApplication::exec();
}
