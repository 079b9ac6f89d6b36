// Trainer's island half: N replicas of the model training one path data parallel (see the top
// of trainer.h). The single-device step in trainer.cc does not pass through here.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <thread>

#include "train/trainer.h"

namespace dipaco {
namespace {

// Runs fn(i) for i in [0, n) at once, one thread per replica; replica 0 runs on the caller's
// thread. Each replica's ops go to its own backend, so the calls never share state.
template <typename Fn>
void for_each_replica(int n, const Fn& fn) {
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n > 0 ? n - 1 : 0));
  for (int i = 1; i < n; ++i) threads.emplace_back([&fn, i] { fn(i); });
  fn(0);
  for (std::thread& t : threads) t.join();
}

int64_t counted_targets(const int32_t* targets, size_t count) {
  int64_t counted = 0;
  for (size_t i = 0; i < count; ++i) counted += targets[i] >= 0;
  return counted;
}

}  // namespace

Result<std::unique_ptr<Trainer>> Trainer::create_island(const std::vector<Backend*>& replicas,
                                                        IslandAllReduce* all_reduce,
                                                        const ModelConfig& model,
                                                        const TrainOptions& options) {
  if (replicas.empty()) return invalid_argument("an island needs at least one backend");
  if (replicas.size() == 1 && all_reduce == nullptr) return create(replicas[0], model, options);
  const int n = static_cast<int>(replicas.size());
  if (all_reduce == nullptr || all_reduce->size() != n) {
    return invalid_argument(
        "an island of " + std::to_string(n) + " backends needs an all-reduce over " +
        std::to_string(n) + " replicas, got " +
        (all_reduce == nullptr ? std::string("none") : std::to_string(all_reduce->size())));
  }
  DIPACO_RETURN_IF_ERROR(model.validate());
  DIPACO_RETURN_IF_ERROR(options.validate(model, n));
  std::unique_ptr<Trainer> t(new Trainer(model, options));
  const int rows = options.batch_size / n;
  const size_t adamw_bytes = 2 * ParamLayout(model).total() * sizeof(float);
  for (int i = 0; i < n; ++i) {
    const std::string where = "island replica " + std::to_string(i) + " (" +
                              replicas[static_cast<size_t>(i)]->name() + ")";
    auto created =
        Model::create(replicas[static_cast<size_t>(i)], model, rows, options.seq_len, adamw_bytes);
    if (!created.is_ok()) return created.status().with_context(where);
    std::unique_ptr<Model> replica_model = std::move(created).value();
    replica_model->init_params(options.seed);
    auto adamw = std::make_unique<AdamW>(replicas[static_cast<size_t>(i)], replica_model->layout(),
                                         options.adamw);
    if (!adamw->ok()) return unavailable(where + ": out of device memory for the AdamW state");
    if (i == 0) {
      t->model_ = std::move(replica_model);
      t->adamw_ = std::move(adamw);
    } else {
      t->other_replicas_.push_back({std::move(replica_model), std::move(adamw)});
    }
  }
  t->all_reduce_ = all_reduce;
  const size_t tokens = static_cast<size_t>(options.batch_size) * options.seq_len;
  t->inputs_.resize(tokens);
  t->targets_.resize(tokens);
  // init_params is deterministic, so this copies what is already there; it makes the replicas'
  // common start a fact of construction rather than of the initializer.
  t->sync_replicas();
  return t;
}

Result<StepStats> Trainer::train_step_island(BatchSource& source) {
  const int n = replicas();
  const int B = options_.batch_size, T = options_.seq_len, rows = B / n;
  const size_t replica_tokens = static_cast<size_t>(rows) * T;
  StepStats stats;
  stats.step = step() + 1;
  stats.lr = schedule_.at(next_schedule_step());
  std::vector<double> losses(static_cast<size_t>(n));
  std::vector<int64_t> counted(static_cast<size_t>(n));
  std::vector<float*> grads(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) grads[static_cast<size_t>(i)] = replica_model(i).grads();
  for_each_replica(n, [&](int i) { replica_model(i).zero_grad(); });
  double loss_sum = 0;
  for (int micro = 0; micro < options_.grad_accum; ++micro) {
    source.next(inputs_.data(), targets_.data());
    int64_t total = 0;
    for (int i = 0; i < n; ++i) {
      counted[static_cast<size_t>(i)] = counted_targets(
          targets_.data() + static_cast<size_t>(i) * replica_tokens, replica_tokens);
      total += counted[static_cast<size_t>(i)];
    }
    for_each_replica(n, [&](int i) {
      const size_t offset = static_cast<size_t>(i) * replica_tokens;
      Model& model = replica_model(i);
      double loss = model.forward(inputs_.data() + offset, targets_.data() + offset, rows, T);
      losses[static_cast<size_t>(i)] = loss;
      if (!std::isfinite(loss)) return;  // reported below, before any update
      // The full batch's loss is the mean over all counted positions: replica i's mean weighs
      // counted_i / total of it (a plain mean over replicas when every position counts).
      const double share =
          total > 0 ? static_cast<double>(counted[static_cast<size_t>(i)]) / total : 0.0;
      model.backward(static_cast<float>(share / options_.grad_accum));
    });
    double micro_loss = 0;
    for (int i = 0; i < n; ++i) {
      const double loss = losses[static_cast<size_t>(i)];
      if (!std::isfinite(loss)) {
        return non_finite_loss(loss, stats).with_context("island replica " + std::to_string(i));
      }
      if (total > 0)
        micro_loss += loss * static_cast<double>(counted[static_cast<size_t>(i)]) / total;
    }
    loss_sum += micro_loss;
    stats.tokens += static_cast<int64_t>(B) * T;
  }
  stats.loss = loss_sum / options_.grad_accum;
  DIPACO_RETURN_IF_ERROR(all_reduce_->all_reduce_sum(grads, model_->num_params()));
  // Every replica now holds the same summed gradient: its norm on replica 0 is the island's.
  stats.grad_norm = std::sqrt(model_->backend().sum_squares(model_->grads(), model_->num_params()));
  if (!std::isfinite(stats.grad_norm)) {
    return failed_precondition("gradient norm is not finite at step " + std::to_string(stats.step) +
                               "; stopped before updating the parameters");
  }
  const float scale = clip_scale(stats.grad_norm);
  for_each_replica(n, [&](int i) {
    replica_adamw(i).step(replica_model(i).params(), replica_model(i).grads(), stats.lr, scale);
  });
  return stats;
}

double Trainer::evaluate_island(BatchSource& source, int batches) {
  const int n = replicas(), B = source.batch(), T = source.seq_len();
  const int rows = model_->max_batch();  // per replica
  std::vector<int32_t> inputs(static_cast<size_t>(B) * T), targets(inputs.size());
  std::vector<double> losses(static_cast<size_t>(n));
  std::vector<int64_t> counted(static_cast<size_t>(n));
  double sum = 0;
  for (int b = 0; b < batches; ++b) {
    source.next(inputs.data(), targets.data());
    // The batch's mean over its counted positions, rows * n rows at a time.
    double weighted = 0;
    int64_t total = 0;
    for (int first = 0; first < B; first += rows * n) {
      for_each_replica(n, [&](int i) {
        const int start = first + i * rows;
        const int count = std::min(rows, B - start);
        losses[static_cast<size_t>(i)] = 0;
        counted[static_cast<size_t>(i)] = 0;
        if (count <= 0) return;
        const size_t offset = static_cast<size_t>(start) * T;
        counted[static_cast<size_t>(i)] =
            counted_targets(targets.data() + offset, static_cast<size_t>(count) * T);
        losses[static_cast<size_t>(i)] =
            replica_model(i).forward(inputs.data() + offset, targets.data() + offset, count, T);
      });
      for (int i = 0; i < n; ++i) {
        weighted +=
            losses[static_cast<size_t>(i)] * static_cast<double>(counted[static_cast<size_t>(i)]);
        total += counted[static_cast<size_t>(i)];
      }
    }
    sum += total > 0 ? weighted / static_cast<double>(total) : 0.0;
  }
  return batches > 0 ? sum / batches : 0.0;
}

void Trainer::sync_replicas() {
  if (other_replicas_.empty()) return;
  const std::vector<float> params = model_->get_params();
  const std::vector<float> m = adamw_->get_m(), v = adamw_->get_v();
  for (Replica& replica : other_replicas_) {
    replica.model->set_params(params);
    replica.adamw->set_state(m, v, adamw_->step_count());
  }
}

Status Trainer::check_replicas_in_sync() const {
  if (other_replicas_.empty()) return Status::ok();
  const size_t count = model_->num_params();
  auto checksum = [count](const Model& m) { return m.backend().sum_squares(m.params(), count); };
  const double reference = checksum(*model_);
  std::vector<float> reference_params;
  for (size_t r = 0; r < other_replicas_.size(); ++r) {
    const Model& replica = *other_replicas_[r].model;
    if (other_replicas_[r].adamw->step_count() != adamw_->step_count()) {
      return internal_error("island replica " + std::to_string(r + 1) + " is at AdamW step " +
                            std::to_string(other_replicas_[r].adamw->step_count()) +
                            ", replica 0 at " + std::to_string(adamw_->step_count()));
    }
    // Equal checksums: equal parameters (for bit-identical replicas on identical devices the
    // reduction gives the same bits). Different ones may still be a different reduction order
    // on another GPU model, so compare the parameters themselves.
    if (checksum(replica) == reference) continue;
    if (reference_params.empty()) reference_params = model_->get_params();
    const std::vector<float> params = replica.get_params();
    for (size_t i = 0; i < count; ++i) {
      if (std::memcmp(&params[i], &reference_params[i], sizeof(float)) != 0) {
        std::ostringstream msg;
        msg << "island replica " << r + 1 << " has drifted from replica 0: parameter " << i
            << " is " << params[i] << " there and " << reference_params[i]
            << " on replica 0 (the replicas must stay bit-identical; this is a bug)";
        return internal_error(msg.str());
      }
    }
  }
  return Status::ok();
}

}  // namespace dipaco
