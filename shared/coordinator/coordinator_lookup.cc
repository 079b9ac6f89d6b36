// Coordinator: read-only lookups the gRPC service uses to check requests (lease owners, shapes,
// module versions to stream). No deadline sweep and no transaction of their own: each is one
// consistent SQLite read under the coordinator's mutex.
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"

namespace dipaco {

Result<std::optional<LeaseSummary>> Coordinator::lease_summary(int64_t lease_id) {
  std::lock_guard lock(mutex_);
  DIPACO_ASSIGN_OR_RETURN(auto lease, find_lease(lease_id));
  if (!lease) return std::optional<LeaseSummary>();
  LeaseSummary summary;
  summary.lease_id = lease->id;
  summary.run_id = lease->run;
  summary.worker_id = lease->worker_id;
  summary.state = lease->state;
  summary.path_id = lease->path_id;
  summary.shard_id = lease->shard_id;
  summary.outer_step = lease->outer_step;
  DIPACO_ASSIGN_OR_RETURN(Statement modules,
                          bound(db_,
                                "SELECT m.module_id FROM path_modules pm JOIN modules m ON "
                                "m.id = pm.module WHERE pm.path = ?1 ORDER BY pm.position",
                                lease->path));
  while (true) {
    DIPACO_ASSIGN_OR_RETURN(bool row, modules.step());
    if (!row) break;
    summary.module_ids.push_back(static_cast<uint32_t>(modules.column_int64(0)));
  }
  return std::optional<LeaseSummary>(std::move(summary));
}

Result<std::vector<StoredChunk>> Coordinator::stored_chunks(int64_t lease_id, uint32_t module_id) {
  std::lock_guard lock(mutex_);
  DIPACO_ASSIGN_OR_RETURN(
      Statement query,
      bound(db_,
            "SELECT c.sequence, c.offset_bytes, c.size_bytes, c.total_bytes, c.file FROM "
            "push_chunks c JOIN modules m ON m.id = c.module WHERE c.lease = ?1 AND "
            "m.module_id = ?2 ORDER BY c.offset_bytes",
            lease_id, module_id));
  std::vector<StoredChunk> chunks;
  while (true) {
    DIPACO_ASSIGN_OR_RETURN(bool row, query.step());
    if (!row) break;
    StoredChunk chunk;
    chunk.sequence = static_cast<uint64_t>(query.column_int64(0));
    chunk.offset_bytes = static_cast<uint64_t>(query.column_int64(1));
    chunk.size_bytes = static_cast<uint64_t>(query.column_int64(2));
    chunk.total_bytes = static_cast<uint64_t>(query.column_int64(3));
    chunk.ref = query.column_text(4);
    chunks.push_back(std::move(chunk));
  }
  return chunks;
}

Result<std::string> Coordinator::read_chunks(const std::vector<StoredChunk>& chunks) const {
  std::vector<std::string> refs;
  refs.reserve(chunks.size());
  for (const StoredChunk& chunk : chunks) refs.push_back(chunk.ref);
  return store_->read_all(refs);
}

Result<std::optional<ModuleRef>> Coordinator::module_version(int64_t run_id, uint32_t module_id,
                                                             uint64_t version) {
  std::lock_guard lock(mutex_);
  DIPACO_ASSIGN_OR_RETURN(Statement query,
                          bound(db_,
                                "SELECT v.checkpoint, v.sha256 FROM module_versions v JOIN modules "
                                "m ON m.id = v.module WHERE m.run = ?1 AND m.module_id = ?2 AND "
                                "v.version = ?3",
                                run_id, module_id, version));
  DIPACO_ASSIGN_OR_RETURN(bool found, query.step());
  if (!found) return std::optional<ModuleRef>();
  ModuleRef ref;
  ref.module_id = module_id;
  ref.version = version;
  ref.checkpoint = query.column_text(0);
  ref.sha256 = query.column_text(1);
  return std::optional<ModuleRef>(std::move(ref));
}

Result<std::string> Coordinator::run_config(int64_t run_id) {
  // A run's config never changes after create_run, and it can be large (a grid of 10,000 paths
  // is about 1 MB; the service puts it in every task): read it from SQLite once, copy it out of
  // the cache without the coordinator's mutex.
  std::shared_ptr<const std::string> config;
  {
    std::lock_guard cache_lock(run_configs_mutex_);
    auto found = run_configs_.find(run_id);
    if (found != run_configs_.end()) config = found->second;
  }
  if (!config) {
    {
      std::lock_guard lock(mutex_);
      DIPACO_ASSIGN_OR_RETURN(Statement query,
                              bound(db_, "SELECT config FROM runs WHERE id = ?1", run_id));
      DIPACO_ASSIGN_OR_RETURN(bool found, query.step());
      if (!found) return not_found("run " + std::to_string(run_id) + " does not exist");
      config = std::make_shared<const std::string>(query.column_text(0));
    }
    std::lock_guard cache_lock(run_configs_mutex_);
    run_configs_.emplace(run_id, config);
  }
  return *config;
}

Result<std::vector<int64_t>> Coordinator::active_runs() {
  std::lock_guard lock(mutex_);
  DIPACO_ASSIGN_OR_RETURN(Statement query,
                          bound(db_, "SELECT id FROM runs WHERE state != 'finished' ORDER BY id"));
  std::vector<int64_t> runs;
  while (true) {
    DIPACO_ASSIGN_OR_RETURN(bool row, query.step());
    if (!row) break;
    runs.push_back(query.column_int64(0));
  }
  return runs;
}

}  // namespace dipaco
