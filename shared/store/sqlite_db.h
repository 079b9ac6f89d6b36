// SqliteDb, Statement, Transaction: a small RAII layer over the SQLite C API.
//
// One SqliteDb is one connection and is not thread-safe: its owner serializes calls (the
// coordinator holds one mutex around everything it does). Every SQLite failure comes back as a
// Status whose message carries SQLite's own text and the statement that failed; nothing throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace dipaco {

// How hard a commit waits for the disk.
//   kFull:   each commit fsyncs the WAL. A commit that returned survives a power loss, so an
//            acknowledgement sent to a worker (a lease id, an accepted chunk) is never taken back
//            and ids are never handed out twice. The coordinator's default, which it implements
//            as group commit over a kNormal connection (coordinator/wal_group_sync.h).
//   kNormal: the WAL is fsynced only at checkpoints. Survives a process crash (kill -9) exactly
//            like kFull; a power loss may roll back the last commits. For scratch runs.
//   kOff:    never fsyncs. Survives a process crash, not a power loss. For tests.
enum class Synchronous { kOff, kNormal, kFull };

struct SqliteOptions {
  Synchronous synchronous = Synchronous::kFull;
  int busy_timeout_ms = 5000;  // how long a statement waits for another connection's lock
  bool create_if_missing = true;
};

class Statement;

class SqliteDb {
 public:
  SqliteDb() = default;
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  SqliteDb(SqliteDb&& other) noexcept;
  SqliteDb& operator=(SqliteDb&& other) noexcept;

  // Opens (or creates) the database at `path` in WAL mode with foreign keys enforced.
  // ":memory:" gives a private in-memory database (no WAL there).
  static Result<SqliteDb> open(const std::string& path, const SqliteOptions& options = {});

  // Runs one or more statements that return no rows (DDL, PRAGMA, BEGIN/COMMIT).
  Status exec(std::string_view sql);
  Result<Statement> prepare(std::string_view sql);
  // Like prepare(), but reuses one compiled statement per SQL text: the Statement handed out is
  // reset (not finalized) when it goes away. If that SQL's statement is still in use (a nested
  // query), a fresh one is prepared instead.
  Result<Statement> cached(std::string_view sql);

  // Row id of the last successful INSERT on this connection.
  int64_t last_insert_rowid() const;
  // Rows changed by the last INSERT/UPDATE/DELETE.
  int changes() const;
  // Rows changed by every INSERT/UPDATE/DELETE since the connection opened.
  int64_t total_changes() const;
  bool in_transaction() const;
  const std::string& path() const { return path_; }
  bool is_open() const { return db_ != nullptr; }

 private:
  struct CachedStatement {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  void close();
  sqlite3* db_ = nullptr;
  std::string path_;
  std::unordered_map<std::string, CachedStatement> cache_;
  friend class Statement;
};

// A prepared statement. Parameters are 1-based (SQLite's convention); columns are 0-based.
// A Statement must not outlive the SqliteDb that made it.
class Statement {
 public:
  Statement() = default;
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;

  Statement& bind(int index, int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, uint32_t value) { return bind(index, static_cast<int64_t>(value)); }
  // Stored as SQLite's signed 64-bit integer; values above INT64_MAX wrap.
  Statement& bind(int index, uint64_t value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, const std::string& text) {
    return bind(index, std::string_view(text));
  }
  Statement& bind(int index, double value);
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Statement& bind_blob(int index, std::string_view bytes);
  Statement& bind_null(int index);
  Statement& bind(int index, std::optional<int64_t> value) {
    return value ? bind(index, *value) : bind_null(index);
  }

  // Advances to the next row: true when a row is available, false when done.
  Result<bool> step();
  // Runs a statement that returns no rows (or ignores them) to completion.
  Status run();
  // Rewinds for another execution with new bindings.
  void reset();

  int64_t column_int64(int column) const;
  double column_double(int column) const;
  std::string column_text(int column) const;
  std::string column_blob(int column) const;
  bool column_is_null(int column) const;

 private:
  friend class SqliteDb;
  Status bind_error() const;
  void release();
  sqlite3_stmt* stmt_ = nullptr;
  sqlite3* db_ = nullptr;
  bool* in_use_ = nullptr;  // set for a statement lent from SqliteDb's cache
  int bind_rc_ = 0;         // first failed bind, reported by step()
};

// BEGIN IMMEDIATE on construction (the write lock is taken up front, so a transaction never
// fails half-way with SQLITE_BUSY on upgrade); ROLLBACK on destruction unless commit() ran.
class Transaction {
 public:
  static Result<Transaction> begin(SqliteDb& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;

  Status commit();

 private:
  explicit Transaction(SqliteDb* db) : db_(db) {}
  SqliteDb* db_ = nullptr;  // null once committed, rolled back or moved from
};

}  // namespace dipaco
