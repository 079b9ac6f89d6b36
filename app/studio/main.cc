#include <QApplication>
#include <QIcon>

#include "main_window.h"

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setApplicationName(QStringLiteral("dipaco-studio"));
  QApplication::setOrganizationName(QStringLiteral("dipaco"));
  QApplication::setDesktopFileName(QStringLiteral("dipaco-studio"));
  QApplication::setWindowIcon(QIcon::fromTheme(QStringLiteral("dipaco-studio")));
  dipaco::studio::MainWindow window;
  window.show();
  return QApplication::exec();
}
