// Discriminative router (DiPaCo): a multinomial logistic regression from a document's features
// to the path that scored it best, plus a per-path bias that balances the load.
//
// Model: standardized features z = (x − mean) · inv_std (per feature, from the training rows);
// logits_c = w_c · z + b_c + balance_c; route = argmax_c logits_c (ties: lower id).
// Training: full-batch Adam on the mean softmax cross-entropy plus (l2 / 2)·||W||², from zero
// weights, so the result is deterministic (no sampling). Balancing: starting from 0, each
// round sets balance_c −= step · ln(load_c / target) for every path with load ≠ target (a
// path with no documents counts as load ½), where load_c is how many of the given rows the
// router sends to c and target = n / C; it stops when every load is at most
// ⌈n/C⌉ · (1 + tolerance) or after `balance_rounds`. The learned weights are not changed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "routing/feature_matrix.h"
#include "util/status.h"

namespace dipaco {

struct DiscriminativeRouterOptions {
  size_t paths = 0;         // C classes (> 1)
  size_t iterations = 300;  // full-batch Adam steps
  float lr = 0.05f;         // Adam learning rate
  float l2 = 1e-4f;         // weight decay on W (not on the bias)
  bool balance = true;
  size_t balance_rounds = 200;
  double balance_step = 0.5;
  double balance_tolerance = 0.05;
};

struct DiscriminativeRouter {
  size_t paths = 0;
  size_t d = 0;
  std::vector<float> mean;     // d
  std::vector<float> inv_std;  // d (1 for constant features)
  std::vector<float> weights;  // paths × d row-major
  std::vector<float> bias;     // paths
  std::vector<float> balance;  // paths, the load-balancing offsets

  // logits (paths values) of one d-vector, balance included.
  void logits(const float* x, float* out) const;
  int32_t route(const float* x) const;
};

struct DiscriminativeRouterReport {
  double train_loss = 0;      // final mean cross-entropy (without the l2 term)
  double train_accuracy = 0;  // before balancing, on the training rows
  std::vector<size_t> loads;  // per path, after balancing, on the training rows
  size_t balance_rounds_used = 0;
  bool balanced = false;  // every load within the cap
};

// labels: the best path of each row, in [0, paths). Errors: sizes, labels out of range,
// paths < 2, no rows, non-finite features.
Result<DiscriminativeRouter> train_discriminative_router(const FeatureMatrix& x,
                                                         std::span<const int32_t> labels,
                                                         const DiscriminativeRouterOptions& options,
                                                         DiscriminativeRouterReport* report);

// Adjusts router->balance on rows x (see the header comment); returns the final loads.
Result<std::vector<size_t>> balance_router_load(DiscriminativeRouter* router,
                                                const FeatureMatrix& x, size_t rounds, double step,
                                                double tolerance, size_t* rounds_used = nullptr);

Result<std::vector<int32_t>> route_discriminative(const DiscriminativeRouter& router,
                                                  const FeatureMatrix& x);

// The label of each row: the path with the lowest loss. losses is n × paths row-major (e.g.
// each path's mean token loss on the document); non-finite losses are errors.
Result<std::vector<int32_t>> best_path_labels(std::span<const float> losses, size_t n,
                                              size_t paths);

}  // namespace dipaco
