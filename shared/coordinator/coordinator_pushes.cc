// Coordinator: outer-gradient pushes, idempotent by (lease id, sequence), and task completion.
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"

namespace dipaco {

Result<PushReply> Coordinator::check_push(int64_t lease_id, uint32_t module_id, uint64_t sequence,
                                          const PushChunk* chunk, int64_t now, bool record) {
  std::string name = "lease " + std::to_string(lease_id);
  // A retry of an accepted chunk is acknowledged whatever became of the lease since.
  DIPACO_ASSIGN_OR_RETURN(
      Statement seen,
      bound(db_,
            "SELECT m.module_id, c.offset_bytes, c.size_bytes, c.total_bytes FROM push_chunks c "
            "JOIN modules m ON m.id = c.module WHERE c.lease = ?1 AND c.sequence = ?2",
            lease_id, sequence));
  DIPACO_ASSIGN_OR_RETURN(bool duplicate, seen.step());
  if (duplicate) {
    uint32_t seen_module = static_cast<uint32_t>(seen.column_int64(0));
    bool same = seen_module == module_id;
    if (chunk != nullptr)
      same = same && static_cast<uint64_t>(seen.column_int64(1)) == chunk->offset_bytes &&
             static_cast<uint64_t>(seen.column_int64(2)) == chunk->data.size() &&
             static_cast<uint64_t>(seen.column_int64(3)) == chunk->total_bytes;
    if (!same)
      return invalid_argument(
          "sequence " + std::to_string(sequence) + " of " + name + " was accepted as module " +
          std::to_string(seen_module) + " bytes [" + std::to_string(seen.column_int64(1)) + ", " +
          std::to_string(seen.column_int64(1) + seen.column_int64(2)) + ") of " +
          std::to_string(seen.column_int64(3)) + "; this retry differs");
    PushReply reply;
    reply.accepted = true;
    reply.duplicate = true;
    return reply;
  }

  DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(lease_id));
  std::string refusal;
  if (!lease)
    refusal = name + " is unknown";
  else if (lease->state == "completed")
    refusal = name + " already completed; sequence " + std::to_string(sequence) + " is new";
  else if (lease->state != "live")
    refusal = lease->end_reason;
  if (!refusal.empty()) {
    if (record) {
      RunEvent event;
      event.run_id = lease ? lease->run : 0;
      event.time_ms = now;
      event.kind = EventKind::kPushRefused;
      event.lease_id = lease_id;
      event.module_id = module_id;
      if (lease) {
        event.worker_id = lease->worker_id;
        event.path_id = lease->path_id;
        event.shard_id = lease->shard_id;
        event.outer_step = lease->outer_step;
      }
      event.detail = "push refused: " + refusal;
      DIPACO_RETURN_IF_ERROR(publish(std::move(event)));
    }
    PushReply reply;
    reply.reason = refusal;
    return reply;
  }

  DIPACO_ASSIGN_OR_RETURN(
      auto module_row,
      query_int(db_,
                "SELECT m.id FROM path_modules pm JOIN modules m ON m.id = pm.module "
                "WHERE pm.path = ?1 AND m.module_id = ?2",
                lease->path, module_id));
  if (!module_row)
    return invalid_argument("module " + std::to_string(module_id) + " is not on path " +
                            std::to_string(lease->path_id) + " of " + name);
  DIPACO_ASSIGN_OR_RETURN(
      auto whole, query_int(db_, "SELECT 1 FROM reports WHERE lease = ?1 AND module = ?2", lease_id,
                            *module_row));
  if (whole)
    return invalid_argument("module " + std::to_string(module_id) + " of " + name +
                            " is already complete; sequence " + std::to_string(sequence) +
                            " is extra");
  PushReply reply;
  reply.accepted = true;
  return reply;
}

Result<PushReply> Coordinator::begin_push(int64_t lease_id, uint32_t module_id, uint64_t sequence) {
  return call<PushReply>([&](int64_t now) -> Result<PushReply> {
    return check_push(lease_id, module_id, sequence, nullptr, now, /*record=*/false);
  });
}

Result<PushReply> Coordinator::accept_push(const PushChunk& chunk) {
  std::string where =
      "lease " + std::to_string(chunk.lease_id) + " sequence " + std::to_string(chunk.sequence);
  if (chunk.data.empty()) return invalid_argument(where + ": empty chunk");
  if (chunk.data.size() > options_.max_chunk_bytes)
    return invalid_argument(where + ": chunk of " + std::to_string(chunk.data.size()) +
                            " bytes is over the limit of " +
                            std::to_string(options_.max_chunk_bytes));
  if (chunk.total_bytes == 0 || chunk.total_bytes > (uint64_t{1} << 62))
    return invalid_argument(where + ": total_bytes " + std::to_string(chunk.total_bytes) +
                            " is out of range");
  if (chunk.offset_bytes >= chunk.total_bytes ||
      chunk.data.size() > chunk.total_bytes - chunk.offset_bytes)
    return invalid_argument(where + ": bytes [" + std::to_string(chunk.offset_bytes) + ", " +
                            std::to_string(chunk.offset_bytes + chunk.data.size()) +
                            ") fall outside the module's " + std::to_string(chunk.total_bytes) +
                            " bytes");
  // The payload is written outside the lock (a large fsync must not stall leases and
  // heartbeats): a read-only pass learns whether the chunk is new and the lease's run, the chunk
  // is made durable, then the transaction below re-checks everything and records it.
  std::string written;
  {
    DIPACO_ASSIGN_OR_RETURN(int64_t run, call<int64_t>([&](int64_t now) -> Result<int64_t> {
                              DIPACO_ASSIGN_OR_RETURN(PushReply pre,
                                                      check_push(chunk.lease_id, chunk.module_id,
                                                                 chunk.sequence, &chunk, now,
                                                                 /*record=*/false));
                              if (!pre.accepted || pre.duplicate) return int64_t{0};
                              DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(chunk.lease_id));
                              return lease ? lease->run : int64_t{0};
                            }));
    if (run != 0) {
      DIPACO_ASSIGN_OR_RETURN(written, store_->write_chunk(run, chunk.lease_id, chunk.module_id,
                                                           chunk.sequence, chunk.data));
    }
  }
  bool recorded = false;
  bool committed = false;
  // Returns once the chunk's row is durable (see call()).
  Result<PushReply> result = call<PushReply>(
      [&](int64_t now) -> Result<PushReply> {
        DIPACO_ASSIGN_OR_RETURN(PushReply reply,
                                check_push(chunk.lease_id, chunk.module_id, chunk.sequence, &chunk,
                                           now, /*record=*/true));
        // A duplicate names the same store entry as `written` (same lease, module, sequence).
        if (reply.duplicate) recorded = true;
        if (!reply.accepted || reply.duplicate) return reply;
        DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(chunk.lease_id));
        if (!lease) return internal_error("lease vanished");
        DIPACO_ASSIGN_OR_RETURN(
            auto module_row,
            query_int(db_,
                      "SELECT m.id FROM path_modules pm JOIN modules m ON m.id = pm.module "
                      "WHERE pm.path = ?1 AND m.module_id = ?2",
                      lease->path, chunk.module_id));
        if (!module_row) return internal_error("module vanished");
        DIPACO_ASSIGN_OR_RETURN(
            auto total,
            query_int(db_, "SELECT total_bytes FROM push_chunks WHERE lease = ?1 AND module = ?2",
                      chunk.lease_id, *module_row));
        if (total && static_cast<uint64_t>(*total) != chunk.total_bytes)
          return invalid_argument(where + ": module " + std::to_string(chunk.module_id) + " has " +
                                  std::to_string(*total) +
                                  " bytes in earlier chunks, this one says " +
                                  std::to_string(chunk.total_bytes));
        int64_t begin = static_cast<int64_t>(chunk.offset_bytes);
        int64_t end = begin + static_cast<int64_t>(chunk.data.size());
        DIPACO_ASSIGN_OR_RETURN(
            int64_t overlaps,
            query_count(db_,
                        "SELECT count(*) FROM push_chunks WHERE lease = ?1 AND module = ?2 AND "
                        "offset_bytes < ?3 AND offset_bytes + size_bytes > ?4",
                        chunk.lease_id, *module_row, end, begin));
        if (overlaps > 0)
          return invalid_argument(where + ": bytes [" + std::to_string(begin) + ", " +
                                  std::to_string(end) + ") of module " +
                                  std::to_string(chunk.module_id) + " overlap an accepted chunk");

        // The payload is durable before the row that names it commits.
        std::string file = written;
        if (file.empty()) {
          DIPACO_ASSIGN_OR_RETURN(
              file, store_->write_chunk(lease->run, chunk.lease_id, chunk.module_id, chunk.sequence,
                                        chunk.data));
          written = file;
        }
        DIPACO_RETURN_IF_ERROR(exec_sql(db_,
                                        "INSERT INTO push_chunks(lease, sequence, module, "
                                        "offset_bytes, size_bytes, total_bytes, "
                                        "file) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                        chunk.lease_id, chunk.sequence, *module_row, begin,
                                        static_cast<int64_t>(chunk.data.size()), chunk.total_bytes,
                                        file));
        DIPACO_RETURN_IF_ERROR(
            exec_sql(db_,
                     "UPDATE leases SET last_sequence = max(coalesce(last_sequence, "
                     "?1), ?1) WHERE id = ?2",
                     chunk.sequence, chunk.lease_id));
        DIPACO_ASSIGN_OR_RETURN(
            int64_t received,
            query_count(db_,
                        "SELECT sum(size_bytes) FROM push_chunks WHERE lease = ?1 AND module = ?2",
                        chunk.lease_id, *module_row));
        if (static_cast<uint64_t>(received) == chunk.total_bytes) {
          reply.module_complete = true;
          DIPACO_RETURN_IF_ERROR(exec_sql(db_,
                                          "INSERT INTO reports(lease, module, total_bytes, "
                                          "reported_ms) VALUES (?1, ?2, ?3, ?4)",
                                          chunk.lease_id, *module_row, chunk.total_bytes, now));
          DIPACO_ASSIGN_OR_RETURN(
              int64_t missing,
              query_count(db_,
                          "SELECT count(*) FROM path_modules pm WHERE pm.path = ?1 AND NOT EXISTS "
                          "(SELECT 1 FROM reports r WHERE r.lease = ?2 AND r.module = pm.module)",
                          lease->path, chunk.lease_id));
          if (missing == 0) {
            DIPACO_RETURN_IF_ERROR(complete_task(*lease, now));
            reply.task_complete = true;
          }
        }
        recorded = true;
        return reply;
      },
      &committed);
  // Refused or rolled back: no row names the chunk written above.
  if (!written.empty() && (!committed || !recorded)) store_->remove({written});
  return result;
}

Status Coordinator::complete_task(const LeaseRow& lease, int64_t now) {
  std::string reason = "lease " + std::to_string(lease.id) + " completed at " +
                       format_unix_ms(now) + ": path " + std::to_string(lease.path_id) + " shard " +
                       std::to_string(lease.shard_id) + " outer step " +
                       std::to_string(lease.outer_step);
  DIPACO_RETURN_IF_ERROR(
      end_lease(lease, "completed", reason, /*requeue=*/false, EventKind::kLeaseCompleted, now));
  DIPACO_RETURN_IF_ERROR(exec_sql(
      db_, "UPDATE tasks SET state = 'done' WHERE id = ?1 AND state = 'leased'", lease.task));
  if (db_.changes() != 1)
    return internal_error("task of lease " + std::to_string(lease.id) + " was not leased");
  DIPACO_ASSIGN_OR_RETURN(
      Statement modules, bound(db_, "SELECT module FROM path_modules WHERE path = ?1", lease.path));
  std::vector<int64_t> module_rows;
  while (true) {
    DIPACO_ASSIGN_OR_RETURN(bool row, modules.step());
    if (!row) break;
    module_rows.push_back(modules.column_int64(0));
  }
  for (int64_t module : module_rows)
    DIPACO_RETURN_IF_ERROR(note_resolved(module, lease.outer_step, now));
  return Status::ok();
}

}  // namespace dipaco
