#include "store/sqlite_db.h"

#include <sqlite3.h>

#include <utility>

namespace dipaco {
namespace {

Status sqlite_error(sqlite3* db, int rc, std::string_view what) {
  std::string message = std::string(what) + ": ";
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  int primary = rc & 0xff;
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return data_loss(message);
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) return unavailable(message);
  if (primary == SQLITE_CONSTRAINT) return failed_precondition(message);
  if (primary == SQLITE_IOERR || primary == SQLITE_FULL || primary == SQLITE_CANTOPEN ||
      primary == SQLITE_READONLY || primary == SQLITE_PERM)
    return io_error(message);
  return internal_error(message);
}

}  // namespace

// ---- SqliteDb -----------------------------------------------------------------------------

SqliteDb::~SqliteDb() {
  close();
}

SqliteDb::SqliteDb(SqliteDb&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      path_(std::move(other.path_)),
      cache_(std::move(other.cache_)) {
  other.cache_.clear();
}

SqliteDb& SqliteDb::operator=(SqliteDb&& other) noexcept {
  if (this != &other) {
    close();
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
    cache_ = std::move(other.cache_);
    other.cache_.clear();
  }
  return *this;
}

void SqliteDb::close() {
  for (auto& [sql, cached] : cache_) sqlite3_finalize(cached.stmt);
  cache_.clear();
  if (db_ != nullptr) {
    // Statements are owned by callers and finalized before the database goes away; v2 defers the
    // close if one leaked instead of failing.
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
}

Result<SqliteDb> SqliteDb::open(const std::string& path, const SqliteOptions& options) {
  SqliteDb db;
  db.path_ = path;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (options.create_if_missing) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path.c_str(), &db.db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status status = sqlite_error(db.db_, rc, "cannot open database " + path);
    return status;
  }
  sqlite3_extended_result_codes(db.db_, 1);
  sqlite3_busy_timeout(db.db_, options.busy_timeout_ms);
  if (path != ":memory:") {
    auto mode = db.prepare("PRAGMA journal_mode=WAL");
    if (!mode.is_ok()) return mode.status().with_context(path);
    auto row = mode->step();
    if (!row.is_ok()) return row.status().with_context(path);
    if (!*row || mode->column_text(0) != "wal")
      return io_error(path + ": cannot switch the database to WAL mode");
  }
  DIPACO_RETURN_IF_ERROR(db.exec("PRAGMA foreign_keys=ON"));
  const char* synchronous = "PRAGMA synchronous=FULL";
  if (options.synchronous == Synchronous::kNormal) synchronous = "PRAGMA synchronous=NORMAL";
  if (options.synchronous == Synchronous::kOff) synchronous = "PRAGMA synchronous=OFF";
  DIPACO_RETURN_IF_ERROR(db.exec(synchronous));
  return db;
}

Status SqliteDb::exec(std::string_view sql) {
  if (db_ == nullptr) return failed_precondition("database is not open");
  std::string text(sql);
  char* error = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    Status status = sqlite_error(db_, rc, text);
    sqlite3_free(error);
    return status;
  }
  return Status::ok();
}

Result<Statement> SqliteDb::prepare(std::string_view sql) {
  if (db_ == nullptr) return failed_precondition("database is not open");
  Statement statement;
  statement.db_ = db_;
  int rc =
      sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &statement.stmt_, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(db_, rc, "prepare \"" + std::string(sql) + "\"");
  return statement;
}

Result<Statement> SqliteDb::cached(std::string_view sql) {
  if (db_ == nullptr) return failed_precondition("database is not open");
  auto found = cache_.find(std::string(sql));
  if (found == cache_.end()) {
    DIPACO_ASSIGN_OR_RETURN(Statement fresh, prepare(sql));
    found = cache_.emplace(std::string(sql), CachedStatement{std::exchange(fresh.stmt_, nullptr)})
                .first;
  }
  if (found->second.in_use) return prepare(sql);
  Statement statement;
  statement.db_ = db_;
  statement.stmt_ = found->second.stmt;
  statement.in_use_ = &found->second.in_use;
  found->second.in_use = true;
  return statement;
}

int64_t SqliteDb::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}
int SqliteDb::changes() const {
  return sqlite3_changes(db_);
}
int64_t SqliteDb::total_changes() const {
  return sqlite3_total_changes64(db_);
}
bool SqliteDb::in_transaction() const {
  return db_ != nullptr && !sqlite3_get_autocommit(db_);
}

// ---- Statement ----------------------------------------------------------------------------

Statement::~Statement() {
  release();
}

void Statement::release() {
  if (stmt_ == nullptr) return;
  if (in_use_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    *in_use_ = false;
  } else {
    sqlite3_finalize(stmt_);
  }
  stmt_ = nullptr;
  in_use_ = nullptr;
}

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)),
      db_(std::exchange(other.db_, nullptr)),
      in_use_(std::exchange(other.in_use_, nullptr)),
      bind_rc_(other.bind_rc_) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    release();
    stmt_ = std::exchange(other.stmt_, nullptr);
    db_ = std::exchange(other.db_, nullptr);
    in_use_ = std::exchange(other.in_use_, nullptr);
    bind_rc_ = other.bind_rc_;
  }
  return *this;
}

Statement& Statement::bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_rc_ == 0) bind_rc_ = rc;
  return *this;
}

Statement& Statement::bind(int index, double value) {
  int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK && bind_rc_ == 0) bind_rc_ = rc;
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  int rc =
      sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_rc_ == 0) bind_rc_ = rc;
  return *this;
}

Statement& Statement::bind_blob(int index, std::string_view bytes) {
  int rc = sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_rc_ == 0) bind_rc_ = rc;
  return *this;
}

Statement& Statement::bind_null(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_rc_ == 0) bind_rc_ = rc;
  return *this;
}

Status Statement::bind_error() const {
  return sqlite_error(db_, bind_rc_,
                      std::string("bind parameter of \"") + sqlite3_sql(stmt_) + "\"");
}

Result<bool> Statement::step() {
  if (stmt_ == nullptr) return failed_precondition("statement is not prepared");
  if (bind_rc_ != 0) return bind_error();
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sqlite_error(db_, rc, sqlite3_sql(stmt_));
}

Status Statement::run() {
  while (true) {
    auto row = step();
    if (!row.is_ok()) return row.status();
    if (!*row) return Status::ok();
  }
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_rc_ = 0;
}

int64_t Statement::column_int64(int column) const {
  return sqlite3_column_int64(stmt_, column);
}
double Statement::column_double(int column) const {
  return sqlite3_column_double(stmt_, column);
}
bool Statement::column_is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::string Statement::column_text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::string Statement::column_blob(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  if (data == nullptr) return {};
  return std::string(static_cast<const char*>(data),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

// ---- Transaction --------------------------------------------------------------------------

Result<Transaction> Transaction::begin(SqliteDb& db) {
  if (db.in_transaction()) return internal_error("nested transaction on " + db.path());
  DIPACO_RETURN_IF_ERROR(db.exec("BEGIN IMMEDIATE"));
  return Transaction(&db);
}

Transaction::Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Transaction::~Transaction() {
  // Rolling back can only fail if the connection is gone; SQLite has then already rolled back.
  if (db_ != nullptr && db_->in_transaction()) (void)db_->exec("ROLLBACK");
}

Status Transaction::commit() {
  if (db_ == nullptr) return internal_error("commit of a finished transaction");
  Status status = db_->exec("COMMIT");
  if (status.is_ok()) db_ = nullptr;
  return status;
}

}  // namespace dipaco
