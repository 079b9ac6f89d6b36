// The coordinator database's schema: a version table and ordered migrations.
//
// schema_version holds one row: the number of the last migration applied. migrate() applies the
// missing ones in order, each in its own transaction, so a crash leaves the database at some
// whole version. A database newer than this binary is refused, never touched.
#pragma once

#include <span>

#include "store/sqlite_db.h"
#include "util/status.h"

namespace dipaco {

struct Migration {
  int version;      // 1, 2, 3, ... with no gaps
  const char* sql;  // statements that take the schema from version-1 to version
};

// The migrations this binary knows, in order.
std::span<const Migration> schema_migrations();
// The version a database has after migrate() with this binary.
int latest_schema_version();

// Version of the schema in `db`; 0 for an empty database.
Result<int> schema_version(SqliteDb& db);

// Brings `db` to latest_schema_version(). Fails with kFailedPrecondition, changing nothing, when
// the database was written by a newer dipaco.
Status migrate(SqliteDb& db);

// migrate() over an explicit list (tests use it to check ordering and atomicity).
Status apply_migrations(SqliteDb& db, std::span<const Migration> migrations);

}  // namespace dipaco
