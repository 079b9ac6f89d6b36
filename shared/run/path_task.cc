#include "run/path_task.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "compress/backend_encoder.h"
#include "compress/codec.h"
#include "data/batch_loader.h"
#include "tensor/safetensors.h"
#include "train/token_batch_source.h"

namespace dipaco {

Status save_path_task_state(const std::string& path, const PathTaskState& state) {
  std::vector<SafetensorsWriteItem> items;
  auto add = [&](const std::string& name, const std::vector<float>& v) {
    if (!v.empty())
      items.push_back(
          {name, "F32", {static_cast<int64_t>(v.size())}, v.data(), v.size() * sizeof(float)});
  };
  add("adamw.m", state.m);
  add("adamw.v", state.v);
  for (const auto& [id, r] : state.residuals) add("residual." + std::to_string(id), r);
  std::map<std::string, std::string> metadata = {{"format", "dipaco-task-state/1"},
                                                 {"adamw_step", std::to_string(state.adamw_step)},
                                                 {"data_position", state.data_position}};
  if (state.outer_step >= 0) metadata["outer_step"] = std::to_string(state.outer_step);
  return write_safetensors(path, items, metadata);
}

Result<PathTaskState> load_path_task_state(const std::string& path, size_t num_params) {
  DIPACO_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(path));
  auto format = f.metadata().find("format");
  if (format == f.metadata().end() || format->second != "dipaco-task-state/1")
    return data_loss(path + ": not a dipaco task state file");
  PathTaskState state;
  DIPACO_ASSIGN_OR_RETURN(uint64_t adamw_step, f.metadata_uint("adamw_step"));
  state.adamw_step = static_cast<int64_t>(adamw_step);
  // Files written before the outer step was recorded have none: -1, like a fresh state.
  if (f.metadata().contains("outer_step")) {
    DIPACO_ASSIGN_OR_RETURN(uint64_t outer_step, f.metadata_uint("outer_step"));
    state.outer_step = static_cast<int64_t>(outer_step);
  }
  auto pos = f.metadata().find("data_position");
  if (pos != f.metadata().end()) state.data_position = pos->second;
  for (const SafetensorsTensor& t : f.tensors()) {
    if (t.dtype != "F32") return data_loss(path + ": tensor '" + t.name + "' is not F32");
    std::vector<float> v(t.bytes / sizeof(float));
    std::memcpy(v.data(), f.data(t), t.bytes);
    if (t.name == "adamw.m" || t.name == "adamw.v") {
      if (v.size() != num_params)
        return data_loss(path + ": '" + t.name + "' has " + std::to_string(v.size()) +
                         " values, the model " + std::to_string(num_params));
      (t.name == "adamw.m" ? state.m : state.v) = std::move(v);
    } else if (t.name.rfind("residual.", 0) == 0) {
      state.residuals[static_cast<uint32_t>(std::strtoul(t.name.c_str() + 9, nullptr, 10))] =
          std::move(v);
    }
  }
  if (state.m.size() != state.v.size()) return data_loss(path + ": adamw.m without adamw.v");
  return state;
}

Result<std::unique_ptr<PathTrainer>> PathTrainer::create(Backend* backend, const ModelConfig& model,
                                                         const TrainOptions& inner) {
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer, Trainer::create(backend, model, inner));
  return std::unique_ptr<PathTrainer>(new PathTrainer(std::move(trainer)));
}

Result<std::unique_ptr<PathTrainer>> PathTrainer::create_island(
    const std::vector<Backend*>& replicas, IslandAllReduce* all_reduce, const ModelConfig& model,
    const TrainOptions& inner) {
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                          Trainer::create_island(replicas, all_reduce, model, inner));
  return std::unique_ptr<PathTrainer>(new PathTrainer(std::move(trainer)));
}

Result<PathTaskResult> PathTrainer::run(const PathTaskSpec& spec, const std::string& shard_tokens,
                                        PathTaskState* state, const InnerStepCallback& on_step) {
  Model& model = trainer_->model();
  const size_t n = model.num_params();
  // The modules must tile the buffer exactly, in order.
  {
    std::vector<const TaskModule*> sorted;
    for (const TaskModule& m : spec.modules) sorted.push_back(&m);
    std::sort(sorted.begin(), sorted.end(), [](const TaskModule* a, const TaskModule* b) {
      return a->range.offset < b->range.offset;
    });
    size_t next = 0;
    for (const TaskModule* m : sorted) {
      if (m->range.offset != next || m->params.size() != m->range.count) {
        return invalid_argument("task of path " + std::to_string(spec.path_id) + ": module " +
                                std::to_string(m->module_id) +
                                " does not continue the parameter buffer at float " +
                                std::to_string(next) + " or has the wrong size");
      }
      next = m->range.end();
    }
    if (next != n) {
      return invalid_argument("task of path " + std::to_string(spec.path_id) + ": modules cover " +
                              std::to_string(next) + " of " + std::to_string(n) + " parameters");
    }
  }
  const TrainOptions& o = trainer_->options();
  uint64_t fresh_seed = spec.data_seed ^ (0x9e3779b97f4a7c15ULL * (spec.shard_id + 1)) ^
                        (0xbf58476d1ce4e5b9ULL * (spec.outer_step + 1));
  // Continue the (path, shard)'s data stream where its last task stopped; a position made for
  // another shard or shape is not an error: start a fresh stream instead.
  uint64_t seed = fresh_seed;
  auto saved = BatchLoader::parse_position(state->data_position);
  if (!state->data_position.empty() && saved.is_ok()) seed = saved->seed;
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<TokenBatchSource> source,
                          TokenBatchSource::open(shard_tokens, o.batch_size, o.seq_len, seed));
  if (saved.is_ok() && !source->restore(state->data_position)) {
    DIPACO_ASSIGN_OR_RETURN(
        source, TokenBatchSource::open(shard_tokens, o.batch_size, o.seq_len, fresh_seed));
  }
  for (const TaskModule& m : spec.modules) model.set_params(m.range, m.params);
  if (state->m.size() == n) {
    trainer_->optimizer().set_state(state->m, state->v, state->adamw_step);
  } else {
    trainer_->optimizer().set_state(std::vector<float>(n, 0.0f), std::vector<float>(n, 0.0f),
                                    state->adamw_step);
  }
  trainer_->sync_replicas();  // an island's other replicas take what replica 0 was given
  // The run's schedule covers outer_steps x H steps; this task's are k H + 1 .. k H + H.
  trainer_->set_schedule_position(static_cast<int64_t>(spec.outer_step) * spec.inner_steps);

  PathTaskResult result;
  auto start = std::chrono::steady_clock::now();
  double loss_sum = 0;
  for (uint32_t i = 0; i < spec.inner_steps; ++i) {
    DIPACO_ASSIGN_OR_RETURN(StepStats stats, trainer_->train_step(*source));
    if (i == 0) result.first_loss = stats.loss;
    result.last_loss = stats.loss;
    loss_sum += stats.loss;
    result.tokens += stats.tokens;
    result.inner_steps_done = i + 1;
    if (on_step && !on_step(i + 1, stats)) return unavailable("cancelled");
  }
  result.mean_loss = loss_sum / std::max<int64_t>(1, result.inner_steps_done);
  DIPACO_RETURN_IF_ERROR(trainer_->check_replicas_in_sync());

  PathTaskState next;
  next.outer_step = static_cast<int64_t>(spec.outer_step);
  next.adamw_step = trainer_->step();
  next.data_position = source->position();
  next.m = trainer_->optimizer().get_m();
  next.v = trainer_->optimizer().get_v();
  // Each module's outer gradient is made on the backend, where the trained parameters are:
  // delta = θ_start − θ_end, then error feedback and encoding; only the payload (and the
  // residual, part of the saved state) come back to the host.
  Backend* backend = &model.backend();
  for (const TaskModule& m : spec.modules) {
    const size_t count = m.range.count;
    if (m.send_params) {
      if (m.dtype != WireDtype::kFp32)
        return invalid_argument("module " + std::to_string(m.module_id) +
                                ": trained parameters travel as fp32, not " +
                                wire_dtype_name(m.dtype));
      std::vector<float> trained(count);
      if (count > 0)
        backend->copy_to_host(trained.data(), model.params() + m.range.offset,
                              count * sizeof(float));
      OuterGradientPayload g{m.module_id, m.range.count, m.dtype, {}};
      DIPACO_RETURN_IF_ERROR(encode_into(WireDtype::kFp32, trained, &g.payload));
      result.gradients.push_back(std::move(g));
      continue;
    }
    DIPACO_ASSIGN_OR_RETURN(BackendEncoder * encoder, encoder_for(m));
    if (count > 0) {
      backend->copy_to_device(encoder->input(), m.params.data(), count * sizeof(float));
      backend->subtract(encoder->input(), encoder->input(), model.params() + m.range.offset, count);
    }
    if (encoder->has_residual()) {
      // The saved residual, or zeros (a reused encoder still holds the last task's).
      auto old = state->residuals.find(m.module_id);
      const bool restored = old != state->residuals.end() && old->second.size() == count;
      DIPACO_RETURN_IF_ERROR(encoder->set_residual(restored ? std::span<const float>(old->second)
                                                            : std::span<const float>()));
    }
    OuterGradientPayload g{m.module_id, m.range.count, m.dtype, {}};
    DIPACO_RETURN_IF_ERROR(encoder->encode(encoder->input(), &g.payload));
    if (encoder->has_residual()) next.residuals[m.module_id] = encoder->residual();
    result.gradients.push_back(std::move(g));
  }
  *state = std::move(next);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

Result<BackendEncoder*> PathTrainer::encoder_for(const TaskModule& m) {
  std::unique_ptr<BackendEncoder>& slot = encoders_[m.module_id];
  const bool wants_residual = m.error_feedback && m.dtype != WireDtype::kFp32 && m.range.count > 0;
  if (slot == nullptr || slot->dtype() != m.dtype || slot->size() != m.range.count ||
      slot->has_residual() != wants_residual) {
    slot.reset();  // free the old buffers before making the new ones
    DIPACO_ASSIGN_OR_RETURN(slot, BackendEncoder::create(&trainer_->model().backend(), m.dtype,
                                                         m.range.count, m.error_feedback));
  }
  return slot.get();
}

}  // namespace dipaco
