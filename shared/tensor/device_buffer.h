// DeviceBuffer: owns one allocation on a Backend's device (RAII, move-only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "tensor/backend.h"

namespace dipaco {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend* backend, size_t bytes)
      : backend_(backend), bytes_(bytes), ptr_(bytes ? backend->alloc(bytes) : nullptr) {}
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : backend_(o.backend_),
        bytes_(std::exchange(o.bytes_, 0)),
        ptr_(std::exchange(o.ptr_, nullptr)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      backend_ = o.backend_;
      bytes_ = std::exchange(o.bytes_, 0);
      ptr_ = std::exchange(o.ptr_, nullptr);
    }
    return *this;
  }

  void reset() {
    if (ptr_ != nullptr) backend_->free(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  // False when the allocation failed (out of device memory).
  bool ok() const { return bytes_ == 0 || ptr_ != nullptr; }
  size_t bytes() const { return bytes_; }
  void* get() const { return ptr_; }
  float* f32() const { return static_cast<float*>(ptr_); }
  int32_t* i32() const { return static_cast<int32_t*>(ptr_); }

 private:
  Backend* backend_ = nullptr;
  size_t bytes_ = 0;
  void* ptr_ = nullptr;
};

}  // namespace dipaco
