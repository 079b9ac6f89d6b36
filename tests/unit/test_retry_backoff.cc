// RetryBackoff: waits drawn from [cap/2, cap] with the cap doubling from initial_ms up to max_ms,
// the failures counted (the worker logs a WARNING from the third), and reset starting over.
#include <QtTest>
#include <random>

#include "retry_backoff.h"

class RetryBackoffTest : public QObject {
  Q_OBJECT

 private slots:
  void waitsDoubleUpToTheCapAndResetStartsOver() {
    dipaco::RetryBackoff backoff(100, 1000);
    std::mt19937_64 random(7);
    QCOMPARE(backoff.failures(), int64_t{0});
    const int64_t caps[] = {100, 200, 400, 800, 1000, 1000};
    for (int64_t cap : caps) {
      const int64_t wait = backoff.next_wait_ms(random);
      QVERIFY2(wait >= cap / 2 && wait <= cap, std::to_string(wait).c_str());
    }
    QCOMPARE(backoff.failures(), int64_t{6});
    backoff.reset();
    QCOMPARE(backoff.failures(), int64_t{0});
    const int64_t first = backoff.next_wait_ms(random);
    QVERIFY(first >= 50 && first <= 100);
  }

  void nonsenseBoundsStillWait() {
    dipaco::RetryBackoff backoff(0, -5);  // at least 1 ms, the cap never below the start
    std::mt19937_64 random(1);
    for (int i = 0; i < 4; ++i) {
      const int64_t wait = backoff.next_wait_ms(random);
      QVERIFY(wait >= 0 && wait <= 1);
    }
  }
};

QTEST_GUILESS_MAIN(RetryBackoffTest)
#include "test_retry_backoff.moc"
