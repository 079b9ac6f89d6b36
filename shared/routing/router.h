// Router: how a document (its routing features) is sent to one of `clusters` paths (or, with a
// single path, shards) — the fitted k-means, product k-means or discriminative model, or the
// random control — saved with its run and exported next to the paths.
//
// File format: safetensors with metadata {"format": "dipaco-router/1", "method", "clusters",
// "d", "seed", "prefix_tokens", "reroute_every"} and, by method, the tensors
//   kmeans          "kmeans.centroids" [k, d]
//   product_kmeans  "product.first.centroids" [K, d1], "product.second.centroids" [K, d - d1]
//   discriminative  "discriminative.{mean,inv_std,bias,balance}" [d] / [C], ".weights" [C, d]
//   random          (none: a document goes to hash(features, seed) mod clusters)
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "algo/grid_spec.h"
#include "routing/discriminative_router.h"
#include "routing/kmeans.h"
#include "routing/product_kmeans.h"
#include "util/status.h"

namespace dipaco {

struct Router {
  RoutingMethod method = RoutingMethod::kKMeans;
  size_t clusters = 0;
  size_t d = 0;  // feature width (the base model's d_model)
  uint64_t seed = 0;
  int prefix_tokens = 32;
  int reroute_every = 0;
  KMeansModel kmeans;
  ProductKMeansModel product;
  DiscriminativeRouter discriminative;

  // The cluster of one d-vector of finite features.
  int32_t route(const float* x) const;
  // The two best clusters, best first (clusters >= 2).
  std::array<int32_t, 2> route_top2(const float* x) const;
};

// Writes atomically; errors name the file.
Status save_router(const Router& router, const std::string& path);
// Validates the metadata and every tensor's shape; errors name the file and what is wrong.
Result<Router> load_router(const std::string& path);

}  // namespace dipaco
