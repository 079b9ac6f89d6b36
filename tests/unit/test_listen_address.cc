// check_listen_address / is_loopback_address (shared/rpc/server.h): plaintext only where no
// other host can connect, and addresses checked before dipaco serve creates anything.
#include <QtTest>
#include <string>

#include "rpc/server.h"

class ListenAddressTest : public QObject {
  Q_OBJECT

 private slots:
  void loopbackAddresses_data() {
    QTest::addColumn<QString>("address");
    QTest::addColumn<bool>("loopback");
    QTest::newRow("127.0.0.1") << "127.0.0.1:7443" << true;
    QTest::newRow("127.8.9.10") << "127.8.9.10:0" << true;
    QTest::newRow("localhost") << "localhost:7443" << true;
    QTest::newRow("LocalHost") << "LocalHost:7443" << true;
    QTest::newRow("::1") << "[::1]:7443" << true;
    QTest::newRow("v4-mapped") << "[::ffff:127.0.0.1]:7443" << true;
    QTest::newRow("unix") << "unix:/tmp/c.sock" << true;
    QTest::newRow("unix-abstract") << "unix-abstract:dipaco" << true;
    QTest::newRow("every v4 interface") << "0.0.0.0:7443" << false;
    QTest::newRow("every v6 interface") << "[::]:7443" << false;
    QTest::newRow("empty host") << ":7443" << false;
    QTest::newRow("LAN") << "10.0.0.5:7443" << false;
    QTest::newRow("128.0.0.1") << "128.0.0.1:7443" << false;
    QTest::newRow("v4-mapped LAN") << "[::ffff:10.0.0.5]:7443" << false;
    QTest::newRow("a name") << "coordinator.example:7443" << false;
    QTest::newRow("localhost look-alike") << "localhost.example:7443" << false;
  }

  void loopbackAddresses() {
    QFETCH(QString, address);
    QFETCH(bool, loopback);
    QCOMPARE(dipaco::is_loopback_address(address.toStdString()), loopback);
    dipaco::Status insecure = dipaco::check_listen_address(address.toStdString(), true);
    if (!address.contains("example")) QCOMPARE(insecure.is_ok(), loopback);
    if (!loopback && !address.contains("example"))
      QVERIFY2(insecure.message().find("--address " + address.toStdString()) != std::string::npos,
               insecure.message().c_str());
  }

  void malformedAddressesAreRefusedWithTheReason_data() {
    QTest::addColumn<QString>("address");
    QTest::addColumn<QString>("reason");
    QTest::newRow("no port") << "garbage"
                             << "expected HOST:PORT";
    QTest::newRow("bare v6") << "::1:7443"
                             << "expected HOST:PORT";
    QTest::newRow("unclosed v6") << "[::1:7443"
                                 << "expected HOST:PORT";
    QTest::newRow("port too large") << "127.0.0.1:99999"
                                    << "'99999' is not a number in 0..65535";
    QTest::newRow("port not a number") << "127.0.0.1:http"
                                       << "'http' is not a number";
    QTest::newRow("empty port") << "127.0.0.1:"
                                << "'' is not a number";
    QTest::newRow("unix without path") << "unix:"
                                       << "needs a path";
    QTest::newRow("unresolvable") << "no-such-host.invalid:7443"
                                  << "cannot resolve the host";
  }

  void malformedAddressesAreRefusedWithTheReason() {
    QFETCH(QString, address);
    QFETCH(QString, reason);
    dipaco::Status s = dipaco::check_listen_address(address.toStdString(), false);
    QVERIFY(!s.is_ok());
    QCOMPARE(s.code(), dipaco::StatusCode::kInvalidArgument);
    QVERIFY2(s.message().find(reason.toStdString()) != std::string::npos, s.message().c_str());
  }

  void tlsMayListenOnEveryInterface() {
    QVERIFY(dipaco::check_listen_address("0.0.0.0:7443", false));
    QVERIFY(dipaco::check_listen_address("[::]:0", false));
    QVERIFY(dipaco::check_listen_address("10.0.0.5:7443", false));
  }
};

QTEST_GUILESS_MAIN(ListenAddressTest)
#include "test_listen_address.moc"
