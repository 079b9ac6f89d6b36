#include <QtTest>
#include <cstdio>
#include <string>

#include "util/progress.h"

class ProgressTest : public QObject {
  Q_OBJECT

 private slots:
  void plainOutputIsLinesWithRateAndEta() {
    char* buffer = nullptr;
    size_t size = 0;
    FILE* out = open_memstream(&buffer, &size);
    {
      dipaco::Progress progress("tokenize", 1000, "docs", out);
      progress.set_interactive(false);
      progress.set_plain_interval_seconds(0.0);
      progress.update(250);
      QVERIFY(progress.line().find("250/1000 docs (25%)") != std::string::npos);
      QVERIFY(progress.line().find("docs/s") != std::string::npos);
      progress.update(1000);
      progress.finish();
    }
    std::fclose(out);
    std::string text(buffer, size);
    std::free(buffer);
    QVERIFY2(text.find('\r') == std::string::npos, text.c_str());  // no redraws off a TTY
    QVERIFY2(text.find("1000/1000 docs (100%)") != std::string::npos, text.c_str());
    QCOMPARE(std::count(text.begin(), text.end(), '\n'), 3L);  // two updates + the final line
  }

  void secondQuantityGivesTheRateAndTheEta() {
    FILE* out = std::fopen("/dev/null", "w");
    dipaco::Progress progress("evaluating", 4, "docs", out);
    progress.set_interactive(false);
    progress.set_rate_unit("tokens", 1000);
    progress.advance(1, 900);
    const std::string line = progress.line();
    QVERIFY2(line.find("evaluating: 1/4 docs (25%)") != std::string::npos, line.c_str());
    QVERIFY2(line.find(" tokens/s") != std::string::npos, line.c_str());
    QVERIFY2(line.find("docs/s") == std::string::npos, line.c_str());
    QVERIFY2(line.find("ETA") != std::string::npos, line.c_str());
    progress.advance(3, 100);  // every token counted: no ETA, the elapsed time instead
    QVERIFY2(progress.line().find("4/4 docs (100%)") != std::string::npos, line.c_str());
    QVERIFY2(progress.line().find("elapsed") != std::string::npos, progress.line().c_str());
    progress.finish();
    std::fclose(out);
  }

  void unknownTotalShowsCountOnly() {
    FILE* out = std::fopen("/dev/null", "w");
    dipaco::Progress progress("read", 0, "lines", out);
    progress.set_interactive(false);
    progress.update(42);
    QVERIFY(progress.line().find("read: 42 lines") != std::string::npos);
    QVERIFY(progress.line().find("ETA") == std::string::npos);
    progress.finish();
    std::fclose(out);
  }
};

QTEST_GUILESS_MAIN(ProgressTest)
#include "test_progress.moc"
