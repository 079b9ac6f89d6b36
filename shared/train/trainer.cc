#include "train/trainer.h"

#include <cmath>
#include <sstream>

#include "train/checkpoint.h"

namespace dipaco {

Status TrainOptions::validate(const ModelConfig& model, int island_replicas) const {
  auto at_least = [](const char* key, double v, double min) -> Status {
    if (v >= min) return Status::ok();
    std::ostringstream msg;
    msg << "train." << key << " must be >= " << min << ", got " << v;
    return invalid_argument(msg.str());
  };
  DIPACO_RETURN_IF_ERROR(at_least("batch_size", batch_size, 1));
  DIPACO_RETURN_IF_ERROR(at_least("seq_len", seq_len, 1));
  DIPACO_RETURN_IF_ERROR(at_least("grad_accum", grad_accum, 1));
  DIPACO_RETURN_IF_ERROR(at_least("steps", static_cast<double>(steps), 1));
  DIPACO_RETURN_IF_ERROR(at_least("warmup_steps", static_cast<double>(warmup_steps), 0));
  DIPACO_RETURN_IF_ERROR(at_least("grad_clip", grad_clip, 0));
  DIPACO_RETURN_IF_ERROR(at_least("weight_decay", adamw.weight_decay, 0));
  if (seq_len > model.max_seq_len) {
    return invalid_argument("train.seq_len " + std::to_string(seq_len) +
                            " exceeds model.max_seq_len " + std::to_string(model.max_seq_len));
  }
  if (island_replicas > 1 && batch_size % island_replicas != 0) {
    return invalid_argument("train.batch_size " + std::to_string(batch_size) +
                            " does not split evenly across the island's " +
                            std::to_string(island_replicas) + " replicas (make it a multiple of " +
                            std::to_string(island_replicas) + ")");
  }
  if (!(lr > 0)) return invalid_argument("train.lr must be > 0");
  if (!(min_lr >= 0 && min_lr <= lr))
    return invalid_argument("train.min_lr must be in [0, train.lr]");
  if (!(adamw.beta1 >= 0 && adamw.beta1 < 1))
    return invalid_argument("train.beta1 must be in [0, 1)");
  if (!(adamw.beta2 >= 0 && adamw.beta2 < 1))
    return invalid_argument("train.beta2 must be in [0, 1)");
  if (!(adamw.eps > 0)) return invalid_argument("train.eps must be > 0");
  return Status::ok();
}

Trainer::Trainer(const ModelConfig&, const TrainOptions& options) : options_(options) {
  schedule_.peak_lr = options.lr;
  schedule_.min_lr = options.min_lr;
  schedule_.warmup_steps = options.warmup_steps;
  schedule_.total_steps = options.steps;
}

Result<std::unique_ptr<Trainer>> Trainer::create(Backend* backend, const ModelConfig& model,
                                                 const TrainOptions& options) {
  DIPACO_RETURN_IF_ERROR(model.validate());
  DIPACO_RETURN_IF_ERROR(options.validate(model));
  std::unique_ptr<Trainer> t(new Trainer(model, options));
  const size_t adamw_bytes = 2 * ParamLayout(model).total() * sizeof(float);
  DIPACO_ASSIGN_OR_RETURN(
      t->model_, Model::create(backend, model, options.batch_size, options.seq_len, adamw_bytes));
  t->model_->init_params(options.seed);
  t->adamw_ = std::make_unique<AdamW>(backend, t->model_->layout(), options.adamw);
  if (!t->adamw_->ok()) return unavailable("out of device memory for the AdamW state");
  size_t n = static_cast<size_t>(options.batch_size) * options.seq_len;
  t->inputs_.resize(n);
  t->targets_.resize(n);
  return t;
}

Status Trainer::non_finite_loss(double loss, const StepStats& stats) {
  return failed_precondition("loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") +
                             " at step " + std::to_string(stats.step) + " (lr " +
                             std::to_string(stats.lr) +
                             "); stopped before updating the parameters");
}

float Trainer::clip_scale(double grad_norm) const {
  // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is < 1.
  if (options_.grad_clip > 0) {
    double s = options_.grad_clip / (grad_norm + 1e-6);
    if (s < 1.0) return static_cast<float>(s);
  }
  return 1.0f;
}

Result<StepStats> Trainer::train_step(BatchSource& source) {
  if (!other_replicas_.empty()) return train_step_island(source);
  const int B = options_.batch_size, T = options_.seq_len;
  StepStats stats;
  stats.step = step() + 1;
  stats.lr = schedule_.at(next_schedule_step());
  model_->zero_grad();
  double loss_sum = 0;
  for (int micro = 0; micro < options_.grad_accum; ++micro) {
    source.next(inputs_.data(), targets_.data());
    double loss = model_->forward(inputs_.data(), targets_.data(), B, T);
    if (!std::isfinite(loss)) return non_finite_loss(loss, stats);
    model_->backward(1.0f / static_cast<float>(options_.grad_accum));
    loss_sum += loss;
    stats.tokens += static_cast<int64_t>(B) * T;
  }
  stats.loss = loss_sum / options_.grad_accum;
  Backend& be = model_->backend();
  stats.grad_norm = std::sqrt(be.sum_squares(model_->grads(), model_->num_params()));
  if (!std::isfinite(stats.grad_norm)) {
    return failed_precondition("gradient norm is not finite at step " + std::to_string(stats.step) +
                               "; stopped before updating the parameters");
  }
  adamw_->step(model_->params(), model_->grads(), stats.lr, clip_scale(stats.grad_norm));
  return stats;
}

double Trainer::evaluate(BatchSource& source, int batches) {
  if (!other_replicas_.empty()) return evaluate_island(source, batches);
  const int B = source.batch(), T = source.seq_len();
  std::vector<int32_t> inputs(static_cast<size_t>(B) * T), targets(inputs.size());
  double sum = 0;
  for (int i = 0; i < batches; ++i) {
    source.next(inputs.data(), targets.data());
    sum += model_->forward(inputs.data(), targets.data(), B, T);
  }
  return batches > 0 ? sum / batches : 0.0;
}

Status Trainer::save_checkpoint(const std::string& path, const BatchSource& source) const {
  double ss = model_->backend().sum_squares(model_->params(), model_->num_params());
  if (!std::isfinite(ss)) {
    return failed_precondition("parameters are not finite at step " + std::to_string(step()) +
                               "; not writing a checkpoint (the last good one at " + path +
                               " is kept)");
  }
  CheckpointState state;
  state.config = model_->config();
  state.step = step();
  state.data_position = source.position();
  state.params = model_->get_params();
  state.m = adamw_->get_m();
  state.v = adamw_->get_v();
  return write_checkpoint(path, model_->layout(), state);
}

Status Trainer::load_checkpoint(const std::string& path, BatchSource* source) {
  DIPACO_ASSIGN_OR_RETURN(CheckpointState state, read_checkpoint(path, model_->config()));
  if (source != nullptr)
    DIPACO_RETURN_IF_ERROR(source->restore(state.data_position).with_context(path));
  model_->set_params(state.params);
  adamw_->set_state(state.m, state.v, state.step);
  schedule_offset_ = 0;
  sync_replicas();
  return Status::ok();
}

}  // namespace dipaco
