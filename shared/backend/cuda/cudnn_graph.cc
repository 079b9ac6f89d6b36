#include "backend/cuda/cudnn_graph.h"

#include <utility>

namespace dipaco::cudnn {

namespace {

constexpr int64_t kByteAlignment = 16;

std::string status_text(cudnnStatus_t status) {
  std::string text = cudnnGetErrorString(status);
  char detail[512] = {};
  cudnnGetLastErrorString(detail, sizeof(detail));
  if (detail[0] != '\0') text += std::string(": ") + detail;
  return text;
}

std::string join(const std::vector<int64_t>& values) {
  std::string text;
  for (int64_t v : values) text += (text.empty() ? "" : ",") + std::to_string(v);
  return "[" + text + "]";
}

const char* type_name(cudnnDataType_t type) {
  switch (type) {
    case CUDNN_DATA_FLOAT: return "f32";
    case CUDNN_DATA_BFLOAT16: return "bf16";
    case CUDNN_DATA_INT32: return "i32";
    case CUDNN_DATA_BOOLEAN: return "bool";
    default: return "other";
  }
}

std::string mode_name(cudnnPointwiseMode_t mode) {
  switch (mode) {
    case CUDNN_POINTWISE_ADD: return "add";
    case CUDNN_POINTWISE_SUB: return "sub";
    case CUDNN_POINTWISE_MUL: return "mul";
    case CUDNN_POINTWISE_DIV: return "div";
    case CUDNN_POINTWISE_EXP: return "exp";
    case CUDNN_POINTWISE_LOG: return "log";
    case CUDNN_POINTWISE_IDENTITY: return "identity";
    case CUDNN_POINTWISE_GEN_INDEX: return "gen_index";
    case CUDNN_POINTWISE_CMP_GE: return "cmp_ge";
    case CUDNN_POINTWISE_BINARY_SELECT: return "binary_select";
    default: return "mode " + std::to_string(static_cast<int>(mode));
  }
}

}  // namespace

Descriptor& Descriptor::operator=(Descriptor&& o) noexcept {
  if (this != &o) {
    if (d_ != nullptr) cudnnBackendDestroyDescriptor(d_);
    d_ = o.d_;
    o.d_ = nullptr;
  }
  return *this;
}

Descriptor::~Descriptor() {
  if (d_ != nullptr) cudnnBackendDestroyDescriptor(d_);
}

std::string Plan::execute(cudnnHandle_t handle, const std::vector<int64_t>& uids,
                          const std::vector<void*>& pointers, void* workspace) const {
  std::vector<int64_t> all_uids = uids;
  std::vector<void*> all_pointers = pointers;
  for (size_t i = 0; i < scalar_uids_.size(); ++i) {
    all_uids.push_back(scalar_uids_[i]);
    all_pointers.push_back(&scalar_values_[i]);
  }
  cudnnBackendDescriptor_t pack = nullptr;
  cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack);
  if (st != CUDNN_STATUS_SUCCESS) return "creating the variant pack: " + status_text(st);
  Descriptor owned(pack);
  const auto n = static_cast<int64_t>(all_uids.size());
  if ((st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n,
                                     all_uids.data())) != CUDNN_STATUS_SUCCESS ||
      (st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                     CUDNN_TYPE_VOID_PTR, n, all_pointers.data())) !=
          CUDNN_STATUS_SUCCESS ||
      (st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR,
                                     1, &workspace)) != CUDNN_STATUS_SUCCESS ||
      (st = cudnnBackendFinalize(pack)) != CUDNN_STATUS_SUCCESS) {
    return "setting up the variant pack: " + status_text(st);
  }
  if ((st = cudnnBackendExecute(handle, plan_.get(), pack)) != CUDNN_STATUS_SUCCESS) {
    return "cudnnBackendExecute: " + status_text(st);
  }
  return "";
}

void GraphBuilder::fail(const char* what, cudnnStatus_t status) {
  if (error_.empty()) error_ = std::string(what) + ": " + status_text(status);
}

Descriptor GraphBuilder::make(cudnnBackendDescriptorType_t type, const char* what) {
  cudnnBackendDescriptor_t d = nullptr;
  if (!error_.empty()) return Descriptor();
  if (cudnnStatus_t st = cudnnBackendCreateDescriptor(type, &d); st != CUDNN_STATUS_SUCCESS) {
    fail(what, st);
    return Descriptor();
  }
  return Descriptor(d);
}

void GraphBuilder::set(const Descriptor& d, cudnnBackendAttributeName_t name,
                       cudnnBackendAttributeType_t type, int64_t count, const void* value,
                       const char* what) {
  if (!error_.empty()) return;
  if (cudnnStatus_t st = cudnnBackendSetAttribute(d.get(), name, type, count, value);
      st != CUDNN_STATUS_SUCCESS) {
    fail(what, st);
  }
}

void GraphBuilder::finish(const Descriptor& d, const char* what) {
  if (!error_.empty()) return;
  if (cudnnStatus_t st = cudnnBackendFinalize(d.get()); st != CUDNN_STATUS_SUCCESS) fail(what, st);
}

cudnnBackendDescriptor_t GraphBuilder::find(int64_t uid) {
  for (const Tensor& t : tensors_)
    if (t.uid == uid) return t.desc.get();
  if (error_.empty())
    error_ = "internal: tensor uid " + std::to_string(uid) + " was never declared";
  return nullptr;
}

int64_t GraphBuilder::declare(cudnnDataType_t type, const std::vector<int64_t>& dims,
                              const std::vector<int64_t>& strides, bool is_virtual, bool by_value,
                              int64_t uid, std::string text) {
  Descriptor d = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "creating a tensor");
  const auto rank = static_cast<int64_t>(dims.size());
  set(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor data type");
  set(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, rank, dims.data(), "tensor dims");
  set(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, rank, strides.data(), "tensor strides");
  set(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid");
  set(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &kByteAlignment,
      "tensor alignment");
  set(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual, "tensor virtual flag");
  set(d, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value, "tensor by-value flag");
  finish(d, "finalizing a tensor");
  tensors_.push_back(Tensor{uid, std::move(d), std::move(text)});
  return uid;
}

int64_t GraphBuilder::tensor(cudnnDataType_t type, const std::vector<int64_t>& dims,
                             const std::vector<int64_t>& strides, bool is_virtual, int64_t uid) {
  return declare(type, dims, strides, is_virtual, /*by_value=*/false, uid > 0 ? uid : next_uid_++,
                 std::string(type_name(type)) + " " + join(dims) + " " + join(strides) +
                     (is_virtual ? " virtual" : ""));
}

int64_t GraphBuilder::scalar(float value) {
  const std::vector<int64_t> ones = {1, 1, 1, 1};
  const int64_t uid =
      declare(CUDNN_DATA_FLOAT, ones, ones, /*is_virtual=*/false,
              /*by_value=*/true, next_uid_++, "f32 by value " + std::to_string(value));
  scalars_.emplace_back(uid, value);
  return uid;
}

int64_t GraphBuilder::virtual_tensor(cudnnDataType_t type, const std::vector<int64_t>& dims) {
  std::vector<int64_t> strides(dims.size(), 1);
  for (size_t i = dims.size() - 1; i > 0; --i) strides[i - 1] = strides[i] * dims[i];
  return tensor(type, dims, strides, /*is_virtual=*/true);
}

void GraphBuilder::pointwise(cudnnPointwiseMode_t mode, int64_t x, int64_t y, int64_t b, int64_t t,
                             cudnnDataType_t math, int64_t axis) {
  Descriptor pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "creating a pointwise descriptor");
  set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
  set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &math, "pointwise precision");
  if (mode == CUDNN_POINTWISE_GEN_INDEX) {
    set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise axis");
  }
  finish(pw, "finalizing a pointwise descriptor");
  Descriptor op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "creating a pointwise op");
  cudnnBackendDescriptor_t pw_raw = pw.get(), x_raw = find(x), y_raw = find(y);
  set(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw_raw,
      "pointwise op descriptor");
  set(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x_raw,
      "pointwise op x");
  if (b != 0) {
    cudnnBackendDescriptor_t b_raw = find(b);
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b_raw,
        "pointwise op b");
  }
  if (t != 0) {
    cudnnBackendDescriptor_t t_raw = find(t);
    set(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t_raw,
        "pointwise op t");
  }
  set(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y_raw,
      "pointwise op y");
  const float one = 1.0f;
  set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, "pointwise alpha1");
  set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, "pointwise alpha2");
  finish(op, "finalizing a pointwise op");
  op_texts_.push_back("pointwise " + mode_name(mode) + " math " + type_name(math) + ": " +
                      std::to_string(x) + (b != 0 ? "," + std::to_string(b) : "") +
                      (t != 0 ? "," + std::to_string(t) : "") + " -> " + std::to_string(y));
  op_settings_.push_back(std::move(pw));
  ops_.push_back(std::move(op));
}

void GraphBuilder::reduction(cudnnReduceTensorOp_t op_type, int64_t x, int64_t y) {
  Descriptor red = make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "creating a reduction descriptor");
  const cudnnDataType_t math = CUDNN_DATA_FLOAT;
  set(red, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &math, "reduction precision");
  set(red, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &op_type,
      "reduction operator");
  finish(red, "finalizing a reduction descriptor");
  Descriptor op = make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "creating a reduction op");
  cudnnBackendDescriptor_t red_raw = red.get(), x_raw = find(x), y_raw = find(y);
  set(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &red_raw,
      "reduction op descriptor");
  set(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x_raw,
      "reduction op x");
  set(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y_raw,
      "reduction op y");
  finish(op, "finalizing a reduction op");
  op_texts_.push_back(std::string("reduction ") +
                      (op_type == CUDNN_REDUCE_TENSOR_MAX ? "max" : "add") + ": " +
                      std::to_string(x) + " -> " + std::to_string(y));
  op_settings_.push_back(std::move(red));
  ops_.push_back(std::move(op));
}

void GraphBuilder::matmul(int64_t a, int64_t b, int64_t c) {
  Descriptor mm = make(CUDNN_BACKEND_MATMUL_DESCRIPTOR, "creating a matmul descriptor");
  const cudnnDataType_t math = CUDNN_DATA_FLOAT;
  set(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &math, "matmul precision");
  finish(mm, "finalizing a matmul descriptor");
  Descriptor op = make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "creating a matmul op");
  cudnnBackendDescriptor_t mm_raw = mm.get(), a_raw = find(a), b_raw = find(b), c_raw = find(c);
  set(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a_raw,
      "matmul op a");
  set(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b_raw,
      "matmul op b");
  set(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c_raw,
      "matmul op c");
  set(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm_raw,
      "matmul op descriptor");
  finish(op, "finalizing a matmul op");
  op_texts_.push_back("matmul: " + std::to_string(a) + "," + std::to_string(b) + " -> " +
                      std::to_string(c));
  op_settings_.push_back(std::move(mm));
  ops_.push_back(std::move(op));
}

void GraphBuilder::reshape(int64_t x, int64_t y) {
  Descriptor op = make(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, "creating a reshape op");
  cudnnBackendDescriptor_t x_raw = find(x), y_raw = find(y);
  set(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x_raw,
      "reshape op x");
  set(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y_raw,
      "reshape op y");
  finish(op, "finalizing a reshape op");
  op_texts_.push_back("reshape: " + std::to_string(x) + " -> " + std::to_string(y));
  ops_.push_back(std::move(op));
}

std::string GraphBuilder::describe() const {
  std::string text;
  for (const Tensor& t : tensors_) text += "tensor " + std::to_string(t.uid) + ": " + t.text + "\n";
  for (const std::string& op : op_texts_) text += op + "\n";
  return text;
}

std::unique_ptr<Plan> GraphBuilder::finalize(std::string* error) {
  auto plan = std::make_unique<Plan>();
  Descriptor graph = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "creating the operation graph");
  std::vector<cudnnBackendDescriptor_t> raw_ops;
  for (const Descriptor& op : ops_) raw_ops.push_back(op.get());
  set(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_, "graph handle");
  set(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
      static_cast<int64_t>(raw_ops.size()), raw_ops.data(), "graph ops");
  finish(graph, "finalizing the operation graph (cuDNN does not support this graph)");

  Descriptor heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "creating the heuristics query");
  cudnnBackendDescriptor_t graph_raw = graph.get();
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  set(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph_raw,
      "heuristics graph");
  set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heuristics mode");
  finish(heur, "running the engine heuristics");

  int64_t count = 0;
  if (error_.empty()) {
    if (cudnnStatus_t st =
            cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr);
        st != CUDNN_STATUS_SUCCESS) {
      fail("counting the heuristics' engine configs", st);
    } else if (count == 0) {
      error_ = "cuDNN's heuristics found no engine for this graph";
    }
  }
  std::vector<Descriptor> configs;
  std::vector<cudnnBackendDescriptor_t> raw_configs;
  for (int64_t i = 0; i < count && error_.empty(); ++i) {
    configs.push_back(make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "creating an engine config"));
    raw_configs.push_back(configs.back().get());
  }
  int64_t returned = 0;
  if (error_.empty()) {
    if (cudnnStatus_t st = cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                    CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned,
                                                    raw_configs.data());
        st != CUDNN_STATUS_SUCCESS) {
      fail("reading the heuristics' engine configs", st);
    }
  }
  std::string last_refusal;
  for (int64_t i = 0; i < returned && error_.empty(); ++i) {
    cudnnBackendDescriptor_t raw = nullptr;
    if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &raw) !=
        CUDNN_STATUS_SUCCESS) {
      continue;
    }
    Descriptor candidate(raw);
    cudnnBackendDescriptor_t cfg = raw_configs[i];
    cudnnStatus_t st = cudnnBackendSetAttribute(raw, CUDNN_ATTR_EXECUTION_PLAN_HANDLE,
                                                CUDNN_TYPE_HANDLE, 1, &handle_);
    if (st == CUDNN_STATUS_SUCCESS) {
      st = cudnnBackendSetAttribute(raw, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                    CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg);
    }
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(raw);
    if (st != CUDNN_STATUS_SUCCESS) {
      last_refusal = status_text(st);
      continue;
    }
    int64_t ws = 0, got = 0;
    if (cudnnBackendGetAttribute(raw, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                 &got, &ws) != CUDNN_STATUS_SUCCESS) {
      continue;
    }
    plan->plan_ = std::move(candidate);
    plan->workspace_bytes_ = ws;
    plan->description_ = "engine config " + std::to_string(i + 1) + " of " +
                         std::to_string(returned) + ", workspace " + std::to_string(ws) + " bytes";
    break;
  }
  if (error_.empty() && plan->plan_.get() == nullptr) {
    error_ = "none of the " + std::to_string(returned) + " engine configs built a plan" +
             (last_refusal.empty() ? "" : " (last: " + last_refusal + ")");
  }
  if (!error_.empty()) {
    *error = error_;
    return nullptr;
  }
  for (Tensor& t : tensors_) plan->keep_alive_.push_back(std::move(t.desc));
  for (Descriptor& d : op_settings_) plan->keep_alive_.push_back(std::move(d));
  for (Descriptor& d : ops_) plan->keep_alive_.push_back(std::move(d));
  for (Descriptor& d : configs) plan->keep_alive_.push_back(std::move(d));
  plan->keep_alive_.push_back(std::move(heur));
  plan->keep_alive_.push_back(std::move(graph));
  plan->scalar_values_ = std::make_unique<float[]>(scalars_.size());
  for (size_t i = 0; i < scalars_.size(); ++i) {
    plan->scalar_uids_.push_back(scalars_[i].first);
    plan->scalar_values_[i] = scalars_[i].second;
  }
  return plan;
}

}  // namespace dipaco::cudnn
