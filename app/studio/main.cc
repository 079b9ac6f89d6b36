#include <QApplication>

#include "main_window.h"

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setApplicationName(QStringLiteral("dipaco-studio"));
  QApplication::setOrganizationName(QStringLiteral("dipaco"));
  dipaco::studio::MainWindow window;
  window.show();
  return QApplication::exec();
}
