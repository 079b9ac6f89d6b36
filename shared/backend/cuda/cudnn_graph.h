// A small builder for cuDNN 9 operation graphs on the backend API (cudnn_graph.h), which is
// all cuDNN ships here: cudnn-frontend is not packaged, so this is our own thin layer.
//
// A graph is a set of tensors (each a unique id, a data type, dims and strides; virtual ones
// live only inside the fused kernel) and operations between them (matmul, pointwise,
// reduction, reshape). finalize() asks cuDNN's heuristics for engines that run the whole graph
// as one fused kernel and keeps the first one that builds. Nothing here aborts: the first
// failing call is remembered with the attribute it was setting and cuDNN's own message, so the
// caller can log why a graph was refused and take another path.
#pragma once

#include <cudnn.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dipaco::cudnn {

// Owns one cudnnBackendDescriptor_t.
class Descriptor {
 public:
  Descriptor() = default;
  explicit Descriptor(cudnnBackendDescriptor_t d) : d_(d) {}
  Descriptor(Descriptor&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
  Descriptor& operator=(Descriptor&& o) noexcept;
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  ~Descriptor();
  cudnnBackendDescriptor_t get() const { return d_; }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

// A finalized execution plan and everything it references (kept alive with it).
class Plan {
 public:
  int64_t workspace_bytes() const { return workspace_bytes_; }
  // The engine cuDNN chose, for logs ("engine 7 of 3 candidates").
  const std::string& description() const { return description_; }
  // Runs the plan on handle's stream. uids/pointers name every non-virtual tensor; by-value
  // scalars the graph declared are added here. Returns "" or why cuDNN refused.
  std::string execute(cudnnHandle_t handle, const std::vector<int64_t>& uids,
                      const std::vector<void*>& pointers, void* workspace) const;

 private:
  friend class GraphBuilder;
  std::vector<Descriptor> keep_alive_;
  Descriptor plan_;
  int64_t workspace_bytes_ = 0;
  std::string description_;
  // By-value scalars: their uids and values (the variant pack points at these).
  std::vector<int64_t> scalar_uids_;
  std::unique_ptr<float[]> scalar_values_;
};

class GraphBuilder {
 public:
  explicit GraphBuilder(cudnnHandle_t handle) : handle_(handle) {}

  // A tensor in memory (virtual = false) or inside the fused kernel. Returns its uid; a
  // caller-chosen uid (> 0) for tensors the caller binds at execution, else one from 1000 up.
  int64_t tensor(cudnnDataType_t type, const std::vector<int64_t>& dims,
                 const std::vector<int64_t>& strides, bool is_virtual, int64_t uid = 0);
  // A float constant passed by value, dims [1, 1, 1, 1].
  int64_t scalar(float value);
  // A virtual tensor with packed strides in dims order.
  int64_t virtual_tensor(cudnnDataType_t type, const std::vector<int64_t>& dims);

  // y = mode(x [, b [, t]]), computed in `math`. axis is GEN_INDEX's dimension (else unused).
  void pointwise(cudnnPointwiseMode_t mode, int64_t x, int64_t y, int64_t b = 0, int64_t t = 0,
                 cudnnDataType_t math = CUDNN_DATA_FLOAT, int64_t axis = -1);
  // y = reduce(x) over the dims where y has size 1.
  void reduction(cudnnReduceTensorOp_t op, int64_t x, int64_t y);
  // c = a @ b over the last two dims, batched (and broadcast) over the leading ones.
  void matmul(int64_t a, int64_t b, int64_t c);
  // y is x seen with other dims/strides (a transpose of the last two dims, here).
  void reshape(int64_t x, int64_t y);

  // Builds the operation graph and the first engine (heuristics mode A) that finalizes.
  // nullptr and *error when any step failed.
  std::unique_ptr<Plan> finalize(std::string* error);

  // The first failure so far ("" when every descriptor finalized), and the operations declared.
  const std::string& error() const { return error_; }
  size_t operation_count() const { return ops_.size(); }
  // One line per tensor (uid, type, dims, strides, virtual or by value) and per operation (kind,
  // inputs -> output), in declaration order: what to compare when cuDNN refuses a graph.
  std::string describe() const;

 private:
  struct Tensor {
    int64_t uid;
    Descriptor desc;
    std::string text;  // for describe()
  };
  // A tensor descriptor with every attribute set; `text` is its describe() line.
  int64_t declare(cudnnDataType_t type, const std::vector<int64_t>& dims,
                  const std::vector<int64_t>& strides, bool is_virtual, bool by_value, int64_t uid,
                  std::string text);
  cudnnBackendDescriptor_t find(int64_t uid);
  Descriptor make(cudnnBackendDescriptorType_t type, const char* what);
  void set(const Descriptor& d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
           int64_t count, const void* value, const char* what);
  void finish(const Descriptor& d, const char* what);
  void fail(const char* what, cudnnStatus_t status);

  cudnnHandle_t handle_;
  std::vector<Tensor> tensors_;
  std::vector<Descriptor> ops_;
  std::vector<std::string> op_texts_;    // for describe()
  std::vector<Descriptor> op_settings_;  // pointwise/reduction/matmul descriptors
  std::vector<std::pair<int64_t, float>> scalars_;
  int64_t next_uid_ = 1000;
  std::string error_;
};

}  // namespace dipaco::cudnn
