// Private helpers shared by the coordinator_*.cc files: SQL shorthands, the lease row, and the
// one-transaction-per-call template. Not part of the coordinator's API.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coordinator/coordinator.h"
#include "store/sqlite_db.h"

namespace dipaco {

// A cached statement for `sql` with args bound to ?1, ?2, ...
template <typename... Args>
Result<Statement> bound(SqliteDb& db, std::string_view sql, const Args&... args) {
  auto statement = db.cached(sql);
  if (!statement.is_ok()) return statement.status();
  int index = 1;
  (statement->bind(index++, args), ...);
  (void)index;
  return statement;
}

template <typename... Args>
Status exec_sql(SqliteDb& db, std::string_view sql, const Args&... args) {
  DIPACO_ASSIGN_OR_RETURN(Statement statement, bound(db, sql, args...));
  return statement.run();
}

// The first column of the first row, or nullopt when there is no row (or it is NULL).
template <typename... Args>
Result<std::optional<int64_t>> query_int(SqliteDb& db, std::string_view sql, const Args&... args) {
  DIPACO_ASSIGN_OR_RETURN(Statement statement, bound(db, sql, args...));
  DIPACO_ASSIGN_OR_RETURN(bool row, statement.step());
  if (!row || statement.column_is_null(0)) return std::optional<int64_t>();
  return std::optional<int64_t>(statement.column_int64(0));
}

// Like query_int for counts and sums that always return a row.
template <typename... Args>
Result<int64_t> query_count(SqliteDb& db, std::string_view sql, const Args&... args) {
  DIPACO_ASSIGN_OR_RETURN(auto value, query_int(db, sql, args...));
  return value.value_or(0);
}

struct Coordinator::LeaseRow {
  int64_t id = 0;
  int64_t task = 0;
  int64_t worker = 0;
  std::string worker_id;
  std::string state;  // live, completed, expired, preempted, cancelled
  int64_t granted_ms = 0;
  int64_t deadline_ms = 0;
  std::optional<int64_t> hard_deadline_ms;
  std::string end_reason;
  int64_t run = 0;
  int64_t path = 0;  // row id
  uint32_t path_id = 0;
  int64_t shard = 0;  // row id
  uint32_t shard_id = 0;
  uint64_t outer_step = 0;
  std::string task_state;
  uint32_t inner_steps = 0;
};

template <typename T, typename Body>
Result<T> Coordinator::transact(Body body) {
  int64_t now = options_.clock();
  pending_events_.clear();
  remove_after_commit_.clear();
  commit_ticket_ = 0;
  lossy_changes_ = 0;
  int64_t changes_before = db_.total_changes();
  auto transaction = Transaction::begin(db_);
  if (!transaction.is_ok()) return transaction.status();
  Status swept = sweep(now);
  if (!swept.is_ok()) {
    pending_events_.clear();
    return swept;
  }
  Result<T> result = body(now);
  if (!result.is_ok()) {
    pending_events_.clear();
    remove_after_commit_.clear();
    return result;
  }
  if (options_.before_commit) options_.before_commit();
  Status committed = transaction->commit();
  if (!committed.is_ok()) {
    pending_events_.clear();
    remove_after_commit_.clear();
    return committed;
  }
  bool must_be_durable = db_.total_changes() - changes_before > lossy_changes_;
  if (wal_sync_ && must_be_durable) {
    commit_ticket_ = wal_sync_->committed();
    committed_removals_.insert(committed_removals_.end(), remove_after_commit_.begin(),
                               remove_after_commit_.end());
  } else {
    store_->remove(remove_after_commit_);
  }
  remove_after_commit_.clear();
  if (sink_) {
    for (const RunEvent& event : pending_events_) sink_(event);
  }
  pending_events_.clear();
  return result;
}

template <typename T, typename Body>
Result<T> Coordinator::call(Body body, bool* committed) {
  uint64_t ticket = 0;
  std::vector<std::string> removals;
  std::optional<Result<T>> result;
  {
    std::lock_guard lock(mutex_);
    result.emplace(transact<T>(std::move(body)));
    if (committed != nullptr) *committed = result->is_ok();
    ticket = std::exchange(commit_ticket_, 0);
    removals.swap(committed_removals_);
  }
  // The reply goes out only once its commit would survive a power loss; the wait holds no lock,
  // so other calls commit meanwhile and share the next fdatasync.
  if (ticket != 0) DIPACO_RETURN_IF_ERROR(wal_sync_->wait_durable(ticket));
  if (!removals.empty()) store_->remove(removals);
  return std::move(*result);
}

}  // namespace dipaco
