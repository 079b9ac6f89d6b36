#include "routing/router.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <numeric>
#include <vector>

#include "data/checksum.h"
#include "tensor/safetensors.h"

namespace dipaco {

namespace {

uint64_t feature_hash(const float* x, size_t d, uint64_t seed) {
  std::string_view bytes(reinterpret_cast<const char*>(x), d * sizeof(float));
  return fnv1a64(bytes, kFnvOffset ^ seed);
}

SafetensorsWriteItem f32_item(const std::string& name, const std::vector<float>& v,
                              std::vector<int64_t> shape) {
  return {name, "F32", std::move(shape), v.data(), v.size() * sizeof(float)};
}

Result<std::vector<float>> read_f32(const SafetensorsFile& f, const std::string& name,
                                    std::vector<int64_t> shape) {
  const SafetensorsTensor* t = f.find(name);
  if (t == nullptr) return data_loss(f.path() + ": router tensor '" + name + "' is missing");
  if (t->dtype != "F32" || t->shape != shape) {
    std::string want;
    for (int64_t s : shape) want += (want.empty() ? "" : ", ") + std::to_string(s);
    return data_loss(f.path() + ": router tensor '" + name + "' must be F32 [" + want + "]");
  }
  std::vector<float> v(t->bytes / sizeof(float));
  std::memcpy(v.data(), f.data(*t), t->bytes);
  return v;
}

}  // namespace

int32_t Router::route(const float* x) const {
  switch (method) {
    case RoutingMethod::kKMeans: return kmeans.nearest(x);
    case RoutingMethod::kProductKMeans: return product.shard(x);
    case RoutingMethod::kDiscriminative: return discriminative.route(x);
    case RoutingMethod::kRandom: return static_cast<int32_t>(feature_hash(x, d, seed) % clusters);
  }
  return 0;
}

std::array<int32_t, 2> Router::route_top2(const float* x) const {
  switch (method) {
    case RoutingMethod::kKMeans: return kmeans.nearest_two(x);
    case RoutingMethod::kProductKMeans: return product.nearest_two(x);
    case RoutingMethod::kDiscriminative: {
      std::vector<float> logits(clusters);
      discriminative.logits(x, logits.data());
      std::vector<int32_t> order(clusters);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
      return {order[0], order[1]};
    }
    case RoutingMethod::kRandom: {
      uint64_t h = feature_hash(x, d, seed);
      int32_t first = static_cast<int32_t>(h % clusters);
      int32_t second = static_cast<int32_t>((first + 1 + (h >> 32) % (clusters - 1)) % clusters);
      return {first, second};
    }
  }
  return {0, 0};
}

Status save_router(const Router& r, const std::string& path) {
  std::map<std::string, std::string> meta = {{"format", "dipaco-router/1"},
                                             {"method", routing_method_name(r.method)},
                                             {"clusters", std::to_string(r.clusters)},
                                             {"d", std::to_string(r.d)},
                                             {"seed", std::to_string(r.seed)},
                                             {"prefix_tokens", std::to_string(r.prefix_tokens)},
                                             {"reroute_every", std::to_string(r.reroute_every)}};
  std::vector<SafetensorsWriteItem> items;
  const auto k = static_cast<int64_t>(r.clusters), d = static_cast<int64_t>(r.d);
  switch (r.method) {
    case RoutingMethod::kKMeans:
      items.push_back(f32_item("kmeans.centroids", r.kmeans.centroids, {k, d}));
      break;
    case RoutingMethod::kProductKMeans: {
      const auto K = static_cast<int64_t>(r.product.k);
      const auto d1 = static_cast<int64_t>(r.product.first.d);
      meta["product_k"] = std::to_string(r.product.k);
      meta["product_d_first"] = std::to_string(r.product.first.d);
      items.push_back(f32_item("product.first.centroids", r.product.first.centroids, {K, d1}));
      items.push_back(
          f32_item("product.second.centroids", r.product.second.centroids, {K, d - d1}));
      break;
    }
    case RoutingMethod::kDiscriminative:
      items.push_back(f32_item("discriminative.mean", r.discriminative.mean, {d}));
      items.push_back(f32_item("discriminative.inv_std", r.discriminative.inv_std, {d}));
      items.push_back(f32_item("discriminative.weights", r.discriminative.weights, {k, d}));
      items.push_back(f32_item("discriminative.bias", r.discriminative.bias, {k}));
      items.push_back(f32_item("discriminative.balance", r.discriminative.balance, {k}));
      break;
    case RoutingMethod::kRandom: break;
  }
  return write_safetensors(path, items, meta);
}

Result<Router> load_router(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::open(path));
  auto format = f.metadata().find("format");
  if (format == f.metadata().end() || format->second != "dipaco-router/1")
    return data_loss(path + ": not a dipaco router (metadata format != dipaco-router/1)");
  Router r;
  auto method = f.metadata().find("method");
  if (method == f.metadata().end())
    return data_loss(path + ": router metadata 'method' is missing");
  auto parsed = parse_routing_method(method->second);
  if (!parsed.is_ok()) return data_loss(path + ": " + parsed.status().message());
  r.method = *parsed;
  DIPACO_ASSIGN_OR_RETURN(r.clusters, f.metadata_uint("clusters"));
  DIPACO_ASSIGN_OR_RETURN(r.d, f.metadata_uint("d"));
  DIPACO_ASSIGN_OR_RETURN(r.seed, f.metadata_uint("seed"));
  DIPACO_ASSIGN_OR_RETURN(uint64_t prefix, f.metadata_uint("prefix_tokens"));
  DIPACO_ASSIGN_OR_RETURN(uint64_t reroute, f.metadata_uint("reroute_every"));
  if (r.clusters < 1 || r.clusters > 1 << 20 || r.d < 1 || r.d > 1 << 20 || prefix < 1 ||
      prefix > 1 << 20 || reroute > 1 << 30)
    return data_loss(path + ": router metadata out of range");
  r.prefix_tokens = static_cast<int>(prefix);
  r.reroute_every = static_cast<int>(reroute);
  const auto k = static_cast<int64_t>(r.clusters), d = static_cast<int64_t>(r.d);
  switch (r.method) {
    case RoutingMethod::kKMeans: {
      r.kmeans.k = r.clusters;
      r.kmeans.d = r.d;
      DIPACO_ASSIGN_OR_RETURN(r.kmeans.centroids, read_f32(f, "kmeans.centroids", {k, d}));
      break;
    }
    case RoutingMethod::kProductKMeans: {
      DIPACO_ASSIGN_OR_RETURN(uint64_t K, f.metadata_uint("product_k"));
      DIPACO_ASSIGN_OR_RETURN(uint64_t d1, f.metadata_uint("product_d_first"));
      if (K * K != r.clusters || d1 < 1 || d1 >= r.d)
        return data_loss(path + ": product k-means metadata does not match clusters / d");
      r.product.k = K;
      r.product.d_first = d1;
      r.product.first = {K, d1, {}};
      r.product.second = {K, r.d - d1, {}};
      DIPACO_ASSIGN_OR_RETURN(r.product.first.centroids,
                              read_f32(f, "product.first.centroids",
                                       {static_cast<int64_t>(K), static_cast<int64_t>(d1)}));
      DIPACO_ASSIGN_OR_RETURN(r.product.second.centroids,
                              read_f32(f, "product.second.centroids",
                                       {static_cast<int64_t>(K), d - static_cast<int64_t>(d1)}));
      break;
    }
    case RoutingMethod::kDiscriminative: {
      DiscriminativeRouter& dr = r.discriminative;
      dr.paths = r.clusters;
      dr.d = r.d;
      DIPACO_ASSIGN_OR_RETURN(dr.mean, read_f32(f, "discriminative.mean", {d}));
      DIPACO_ASSIGN_OR_RETURN(dr.inv_std, read_f32(f, "discriminative.inv_std", {d}));
      DIPACO_ASSIGN_OR_RETURN(dr.weights, read_f32(f, "discriminative.weights", {k, d}));
      DIPACO_ASSIGN_OR_RETURN(dr.bias, read_f32(f, "discriminative.bias", {k}));
      DIPACO_ASSIGN_OR_RETURN(dr.balance, read_f32(f, "discriminative.balance", {k}));
      break;
    }
    case RoutingMethod::kRandom: break;
  }
  return r;
}

}  // namespace dipaco
