// NcclIslandAllReduce: the island all-reduce (tensor/island_all_reduce.h) over the GPUs of one
// process, one NCCL communicator per GPU made by ncclCommInitAll, and the plugin entry point
// that makes it.
//
// The collective runs on streams of its own, one per GPU: CudaBackend does not expose its
// stream, so all_reduce_sum first waits for each backend's queued work (Backend::synchronize)
// and waits for its own streams before returning. Both waits happen where the trainer needs
// the sum on the host side anyway (the gradient norm follows), so they cost little.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/cuda_plugin_api.h"
#include "tensor/island_all_reduce.h"

namespace dipaco {
namespace {

std::string nccl_version_text() {
  int version = 0;
  ncclGetVersion(&version);
  // NCCL_VERSION(X, Y, Z) = X * 10000 + Y * 100 + Z since 2.9.
  return std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
         std::to_string(version % 100);
}

class NcclIslandAllReduce final : public IslandAllReduce {
 public:
  // Makes the communicators and streams; nullptr and *error on failure.
  static std::unique_ptr<NcclIslandAllReduce> create(std::vector<Backend*> backends,
                                                     std::vector<int> devices, std::string* error);
  ~NcclIslandAllReduce() override;
  NcclIslandAllReduce(const NcclIslandAllReduce&) = delete;
  NcclIslandAllReduce& operator=(const NcclIslandAllReduce&) = delete;

  std::string name() const override;
  int size() const override { return static_cast<int>(devices_.size()); }
  Status all_reduce_sum(const std::vector<float*>& buffers, size_t count) override;

 private:
  NcclIslandAllReduce() = default;
  std::string nccl_error(const char* call, ncclResult_t result, size_t replica) const;

  std::vector<Backend*> backends_;
  std::vector<int> devices_;
  std::vector<ncclComm_t> comms_;
  std::vector<cudaStream_t> streams_;
};

std::string cuda_error(const char* call, cudaError_t err, int device) {
  return std::string(call) + " on GPU " + std::to_string(device) + ": " + cudaGetErrorString(err);
}

std::unique_ptr<NcclIslandAllReduce> NcclIslandAllReduce::create(std::vector<Backend*> backends,
                                                                 std::vector<int> devices,
                                                                 std::string* error) {
  if (backends.size() != devices.size() || devices.empty()) {
    *error = "an NCCL island needs one backend per GPU and at least one GPU";
    return nullptr;
  }
  std::unique_ptr<NcclIslandAllReduce> island(new NcclIslandAllReduce());
  island->backends_ = std::move(backends);
  island->devices_ = std::move(devices);
  const int n = static_cast<int>(island->devices_.size());
  std::vector<ncclComm_t> comms(static_cast<size_t>(n), nullptr);
  if (ncclResult_t r = ncclCommInitAll(comms.data(), n, island->devices_.data());
      r != ncclSuccess) {
    *error = std::string("ncclCommInitAll over ") + std::to_string(n) +
             " GPUs failed: " + ncclGetErrorString(r) +
             " (NCCL_DEBUG=WARN in the environment makes NCCL say more)";
    return nullptr;
  }
  island->comms_ = std::move(comms);
  for (int device : island->devices_) {
    cudaStream_t stream = nullptr;
    cudaError_t err = cudaSetDevice(device);
    if (err == cudaSuccess) err = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
      *error = cuda_error("cudaStreamCreateWithFlags", err, device);
      return nullptr;  // the destructor frees the communicators and the streams made so far
    }
    island->streams_.push_back(stream);
  }
  return island;
}

NcclIslandAllReduce::~NcclIslandAllReduce() {
  for (size_t i = 0; i < streams_.size(); ++i) {
    cudaSetDevice(devices_[i]);
    cudaStreamDestroy(streams_[i]);
  }
  for (ncclComm_t comm : comms_) {
    if (comm != nullptr) ncclCommDestroy(comm);
  }
}

std::string NcclIslandAllReduce::name() const {
  std::string gpus;
  for (int device : devices_) gpus += (gpus.empty() ? "" : ",") + std::to_string(device);
  return "nccl " + nccl_version_text() + " (GPUs " + gpus + ")";
}

std::string NcclIslandAllReduce::nccl_error(const char* call, ncclResult_t result,
                                            size_t replica) const {
  std::string text = std::string(call) + " on GPU " + std::to_string(devices_[replica]) + ": " +
                     ncclGetErrorString(result);
  const char* last = ncclGetLastError(comms_[replica]);
  if (last != nullptr && last[0] != '\0') text += " (" + std::string(last) + ")";
  return text;
}

Status NcclIslandAllReduce::all_reduce_sum(const std::vector<float*>& buffers, size_t count) {
  if (buffers.size() != devices_.size()) {
    return invalid_argument("island all-reduce: " + std::to_string(buffers.size()) +
                            " buffers for " + std::to_string(devices_.size()) + " GPUs");
  }
  if (count == 0) return Status::ok();
  for (Backend* backend : backends_) backend->synchronize();
  if (ncclResult_t r = ncclGroupStart(); r != ncclSuccess) {
    return internal_error(std::string("ncclGroupStart: ") + ncclGetErrorString(r));
  }
  std::string failure;
  for (size_t i = 0; i < devices_.size(); ++i) {
    // In place: send and receive buffer are the same.
    ncclResult_t r =
        ncclAllReduce(buffers[i], buffers[i], count, ncclFloat32, ncclSum, comms_[i], streams_[i]);
    if (r != ncclSuccess && failure.empty()) failure = nccl_error("ncclAllReduce", r, i);
  }
  if (ncclResult_t r = ncclGroupEnd(); r != ncclSuccess && failure.empty()) {
    failure = nccl_error("ncclGroupEnd", r, 0);
  }
  if (!failure.empty()) return internal_error("island all-reduce: " + failure);
  for (size_t i = 0; i < devices_.size(); ++i) {
    cudaError_t err = cudaSetDevice(devices_[i]);
    if (err == cudaSuccess) err = cudaStreamSynchronize(streams_[i]);
    if (err != cudaSuccess) {
      return internal_error("island all-reduce: " +
                            cuda_error("cudaStreamSynchronize", err, devices_[i]));
    }
  }
  return Status::ok();
}

}  // namespace
}  // namespace dipaco

dipaco::IslandAllReduce* dipaco_cuda_create_island_all_reduce(dipaco::Backend* const* backends,
                                                              const int* devices, int count,
                                                              char* error, size_t error_size) {
  std::string failure;
  std::vector<dipaco::Backend*> island_backends(backends, backends + count);
  std::vector<int> island_devices(devices, devices + count);
  std::unique_ptr<dipaco::NcclIslandAllReduce> island = dipaco::NcclIslandAllReduce::create(
      std::move(island_backends), std::move(island_devices), &failure);
  std::snprintf(error, error_size, "%s", failure.c_str());
  return island.release();
}
