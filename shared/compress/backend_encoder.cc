#include "compress/backend_encoder.h"

#include <string>

#include "compress/codec.h"

namespace dipaco {

Result<std::unique_ptr<BackendEncoder>> BackendEncoder::create(Backend* backend, WireDtype dtype,
                                                               size_t count, bool error_feedback) {
  std::unique_ptr<BackendEncoder> e(new BackendEncoder(backend, dtype, count));
  const bool with_residual = error_feedback && dtype != WireDtype::kFp32 && count > 0;
  e->input_ = DeviceBuffer(backend, count * sizeof(float));
  if (with_residual) e->residual_ = DeviceBuffer(backend, count * sizeof(float));
  e->payload_ = DeviceBuffer(backend, encoded_size(dtype, count));
  e->workspace_ = DeviceBuffer(backend, backend->error_feedback_workspace_bytes(count));
  if (!e->input_.ok() || !e->residual_.ok() || !e->payload_.ok() || !e->workspace_.ok()) {
    size_t total =
        e->input_.bytes() + e->residual_.bytes() + e->payload_.bytes() + e->workspace_.bytes();
    return failed_precondition("out of device memory on " + backend->name() + " for the " +
                               wire_dtype_name(dtype) + " outer gradient of " +
                               std::to_string(count) + " values (" +
                               std::to_string((total + (1 << 20) - 1) >> 20) + " MiB)");
  }
  if (with_residual) backend->fill_zero(e->residual_.get(), e->residual_.bytes());
  return e;
}

Status BackendEncoder::set_residual(std::span<const float> r) {
  if (!has_residual()) {
    return invalid_argument(std::string("a ") + wire_dtype_name(dtype_) +
                            " encoder without error feedback has no residual to set");
  }
  if (r.empty()) {
    backend_->fill_zero(residual_.get(), residual_.bytes());
    return Status::ok();
  }
  if (r.size() != count_) {
    return invalid_argument("residual of " + std::to_string(r.size()) +
                            " values for an encoder of " + std::to_string(count_));
  }
  backend_->copy_to_device(residual_.get(), r.data(), residual_.bytes());
  return Status::ok();
}

std::vector<float> BackendEncoder::residual() const {
  if (!has_residual()) return {};
  std::vector<float> r(count_);
  backend_->copy_to_host(r.data(), residual_.get(), residual_.bytes());
  return r;
}

Status BackendEncoder::encode(const float* x, std::vector<uint8_t>* out) {
  float* residual = has_residual() ? residual_.f32() : nullptr;
  if (!backend_->error_feedback_encode(static_cast<uint8_t*>(payload_.get()), residual,
                                       workspace_.get(), x, count_, dtype_)) {
    // The backend refused a value it cannot encode and wrote nothing: bring x + residual to
    // the host, as the host codec would have seen it, for the codec's own error message.
    std::vector<float> corrected(count_);
    backend_->copy_to_host(corrected.data(), x, count_ * sizeof(float));
    if (residual != nullptr) {
      std::vector<float> r = this->residual();
      for (size_t i = 0; i < count_; ++i) corrected[i] = corrected[i] + r[i];
    }
    DIPACO_RETURN_IF_ERROR(check_encodable(dtype_, corrected));
    return internal_error(backend_->name() + " refused to encode " + std::to_string(count_) +
                          " values as " + wire_dtype_name(dtype_) + " that the host codec accepts");
  }
  out->resize(payload_.bytes());
  if (!out->empty()) backend_->copy_to_host(out->data(), payload_.get(), out->size());
  return Status::ok();
}

}  // namespace dipaco
