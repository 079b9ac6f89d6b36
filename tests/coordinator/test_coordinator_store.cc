// The SQLite layer under the coordinator: RAII wrapper, transactions, schema migrations.
#include <sys/wait.h>
#include <unistd.h>

#include <QTemporaryDir>
#include <QtTest>
#include <string>

#include "store/schema.h"
#include "store/sqlite_db.h"

using dipaco::Migration;
using dipaco::SqliteDb;
using dipaco::SqliteOptions;
using dipaco::Statement;
using dipaco::StatusCode;
using dipaco::Synchronous;
using dipaco::Transaction;

namespace {

SqliteDb open_or_die(const std::string& path, SqliteOptions options = {}) {
  auto db = SqliteDb::open(path, options);
  if (!db.is_ok()) qFatal("%s", db.status().to_string().c_str());
  return std::move(db).value();
}

int64_t query_int(SqliteDb& db, const std::string& sql) {
  auto statement = db.prepare(sql);
  if (!statement.is_ok()) qFatal("%s", statement.status().to_string().c_str());
  auto row = statement->step();
  if (!row.is_ok() || !*row) qFatal("no row for %s", sql.c_str());
  return statement->column_int64(0);
}

std::string query_text(SqliteDb& db, const std::string& sql) {
  auto statement = db.prepare(sql);
  if (!statement.is_ok()) qFatal("%s", statement.status().to_string().c_str());
  auto row = statement->step();
  if (!row.is_ok() || !*row) qFatal("no row for %s", sql.c_str());
  return statement->column_text(0);
}

}  // namespace

class CoordinatorStoreTest : public QObject {
  Q_OBJECT

 private slots:
  void openSetsWalForeignKeysAndSynchronous() {
    QTemporaryDir dir;
    std::string path = dir.filePath("c.db").toStdString();
    {
      SqliteDb db = open_or_die(path);
      QCOMPARE(query_text(db, "PRAGMA journal_mode"), std::string("wal"));
      QCOMPARE(query_int(db, "PRAGMA foreign_keys"), int64_t{1});
      QCOMPARE(query_int(db, "PRAGMA synchronous"), int64_t{2});  // FULL
    }
    SqliteOptions normal;
    normal.synchronous = Synchronous::kNormal;
    SqliteDb db = open_or_die(path, normal);
    QCOMPARE(query_int(db, "PRAGMA synchronous"), int64_t{1});  // NORMAL
  }

  void missingDatabaseWithoutCreateIsAnIoError() {
    QTemporaryDir dir;
    SqliteOptions options;
    options.create_if_missing = false;
    auto db = SqliteDb::open(dir.filePath("absent.db").toStdString(), options);
    QVERIFY(!db.is_ok());
    QCOMPARE(db.status().code(), StatusCode::kIoError);
    QVERIFY2(db.status().message().find("absent.db") != std::string::npos,
             db.status().message().c_str());
  }

  void typedBindsRoundTrip() {
    SqliteDb db = open_or_die(":memory:");
    QVERIFY(db.exec("CREATE TABLE t(i INTEGER, d REAL, s TEXT, b BLOB, n INTEGER)"));
    auto insert = db.prepare("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)");
    QVERIFY(insert.is_ok());
    const std::string blob("a\0b\xff", 4);
    QVERIFY(insert->bind(1, int64_t{1} << 40)
                .bind(2, 0.25)
                .bind(3, "päth")
                .bind_blob(4, blob)
                .bind_null(5)
                .run());
    auto select = db.prepare("SELECT i, d, s, b, n FROM t");
    QVERIFY(select.is_ok());
    auto row = select->step();
    QVERIFY(row.is_ok() && *row);
    QCOMPARE(select->column_int64(0), int64_t{1} << 40);
    QCOMPARE(select->column_double(1), 0.25);
    QCOMPARE(select->column_text(2), std::string("päth"));
    QCOMPARE(select->column_blob(3), blob);
    QVERIFY(select->column_is_null(4));
    row = select->step();
    QVERIFY(row.is_ok() && !*row);
  }

  void badSqlAndBadBindsAreStatuses() {
    SqliteDb db = open_or_die(":memory:");
    auto bad = db.prepare("SELEC 1");
    QVERIFY(!bad.is_ok());
    QVERIFY2(bad.status().message().find("SELEC 1") != std::string::npos,
             bad.status().message().c_str());
    auto statement = db.prepare("SELECT ?1");
    QVERIFY(statement.is_ok());
    statement->bind(7, int64_t{3});  // no parameter 7
    QVERIFY(!statement->step().is_ok());
    statement->reset();
    QVERIFY(statement->bind(1, int64_t{3}).step().is_ok());
  }

  void transactionRollsBackUnlessCommitted() {
    SqliteDb db = open_or_die(":memory:");
    QVERIFY(db.exec("CREATE TABLE t(x INTEGER)"));
    {
      auto transaction = Transaction::begin(db);
      QVERIFY(transaction.is_ok());
      QVERIFY(db.exec("INSERT INTO t VALUES (1)"));
      QVERIFY(db.in_transaction());
      // leaves scope without commit(), as an early error return does
    }
    QVERIFY(!db.in_transaction());
    QCOMPARE(query_int(db, "SELECT count(*) FROM t"), int64_t{0});
    {
      auto transaction = Transaction::begin(db);
      QVERIFY(transaction.is_ok());
      QVERIFY(db.exec("INSERT INTO t VALUES (2)"));
      QVERIFY(transaction->commit());
    }
    QCOMPARE(query_int(db, "SELECT count(*) FROM t"), int64_t{1});
    auto outer = Transaction::begin(db);
    QVERIFY(outer.is_ok());
    QVERIFY(!Transaction::begin(db).is_ok());  // no nesting
  }

  void foreignKeysAreEnforced() {
    SqliteDb db = open_or_die(":memory:");
    QVERIFY(
        db.exec("CREATE TABLE p(id INTEGER PRIMARY KEY); "
                "CREATE TABLE c(p INTEGER NOT NULL REFERENCES p(id))"));
    auto status = db.exec("INSERT INTO c VALUES (5)");
    QVERIFY(!status.is_ok());
    QCOMPARE(status.code(), StatusCode::kFailedPrecondition);
  }

  void busyTimeoutBoundsTheWaitForAnotherWriter() {
    QTemporaryDir dir;
    std::string path = dir.filePath("c.db").toStdString();
    SqliteDb first = open_or_die(path);
    SqliteOptions quick;
    quick.busy_timeout_ms = 20;
    SqliteDb second = open_or_die(path, quick);
    auto held = Transaction::begin(first);
    QVERIFY(held.is_ok());
    auto blocked = Transaction::begin(second);
    QVERIFY(!blocked.is_ok());
    QCOMPARE(blocked.status().code(), StatusCode::kUnavailable);
    QVERIFY(held->commit());
    QVERIFY(Transaction::begin(second).is_ok());
  }

  void processKilledInsideATransactionLeavesNoTrace() {
    QTemporaryDir dir;
    std::string path = dir.filePath("c.db").toStdString();
    {
      SqliteDb db = open_or_die(path);
      QVERIFY(db.exec("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1)"));
    }
    pid_t child = fork();
    QVERIFY(child >= 0);
    if (child == 0) {
      SqliteDb db = open_or_die(path);
      auto transaction = Transaction::begin(db);
      if (!transaction.is_ok()) _exit(2);
      if (!db.exec("INSERT INTO t VALUES (2); UPDATE t SET x = 10")) _exit(3);
      _exit(0);  // dies holding the write lock, without COMMIT and without destructors
    }
    int wstatus = 0;
    QCOMPARE(waitpid(child, &wstatus, 0), child);
    QVERIFY(WIFEXITED(wstatus));
    QCOMPARE(WEXITSTATUS(wstatus), 0);
    SqliteDb db = open_or_die(path);
    QCOMPARE(query_int(db, "SELECT count(*) FROM t"), int64_t{1});
    QCOMPARE(query_int(db, "SELECT x FROM t"), int64_t{1});
    QVERIFY(db.exec("INSERT INTO t VALUES (3)"));  // the dead writer's lock is gone
  }

  void migrateFromEmptyCreatesEveryTable() {
    QTemporaryDir dir;
    SqliteDb db = open_or_die(dir.filePath("c.db").toStdString());
    QCOMPARE(*dipaco::schema_version(db), 0);
    QVERIFY(dipaco::migrate(db));
    QCOMPARE(*dipaco::schema_version(db), dipaco::latest_schema_version());
    for (const char* table :
         {"runs", "paths", "modules", "module_versions", "path_modules", "shards", "tasks",
          "leases", "workers", "metrics", "events", "push_chunks", "reports", "aggregations"}) {
      QVERIFY2(query_int(db, std::string("SELECT count(*) FROM sqlite_master WHERE type='table' "
                                         "AND name='") +
                                 table + "'") == 1,
               table);
    }
    QVERIFY(dipaco::migrate(db));  // idempotent
    QCOMPARE(query_int(db, "SELECT count(*) FROM schema_version"), int64_t{1});
  }

  void newerDatabaseIsRefusedUntouched() {
    QTemporaryDir dir;
    SqliteDb db = open_or_die(dir.filePath("c.db").toStdString());
    QVERIFY(dipaco::migrate(db));
    QVERIFY(db.exec("UPDATE schema_version SET version = 99"));
    auto status = dipaco::migrate(db);
    QVERIFY(!status.is_ok());
    QCOMPARE(status.code(), StatusCode::kFailedPrecondition);
    QVERIFY2(status.message().find("schema version 99") != std::string::npos &&
                 status.message().find("newer dipaco") != std::string::npos,
             status.message().c_str());
    QCOMPARE(*dipaco::schema_version(db), 99);
  }

  void migrationsApplyInOrderEachAtomically() {
    SqliteDb db = open_or_die(":memory:");
    const Migration good[] = {{1, "CREATE TABLE a(x INTEGER)"},
                              {2, "ALTER TABLE a ADD COLUMN y TEXT"}};
    QVERIFY(dipaco::apply_migrations(db, std::span<const Migration>(good, 1)));
    QCOMPARE(*dipaco::schema_version(db), 1);
    QVERIFY(dipaco::apply_migrations(db, good));
    QCOMPARE(*dipaco::schema_version(db), 2);
    QVERIFY(db.exec("INSERT INTO a(x, y) VALUES (1, 'one')"));

    // v3 half-succeeds: its first statement must be rolled back with the failing second one.
    const Migration broken[] = {good[0], good[1], {3, "CREATE TABLE b(z); CREATE TABLE a(x)"}};
    auto status = dipaco::apply_migrations(db, broken);
    QVERIFY(!status.is_ok());
    QVERIFY2(status.message().find("version 3") != std::string::npos, status.message().c_str());
    QCOMPARE(*dipaco::schema_version(db), 2);
    QCOMPARE(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name='b'"), int64_t{0});

    const Migration gap[] = {{1, "SELECT 1"}, {3, "SELECT 1"}};
    QCOMPARE(dipaco::apply_migrations(db, gap).code(), StatusCode::kInternal);
  }
};

QTEST_GUILESS_MAIN(CoordinatorStoreTest)
#include "test_coordinator_store.moc"
