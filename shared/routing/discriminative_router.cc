#include "routing/discriminative_router.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace dipaco {
namespace {

Status check_router_input(const DiscriminativeRouter& r, const FeatureMatrix& x) {
  DIPACO_RETURN_IF_ERROR(validate_features(x));
  if (x.cols != r.d) {
    return invalid_argument("features have " + std::to_string(x.cols) +
                            " dimensions but the router was trained on " + std::to_string(r.d));
  }
  return Status::ok();
}

std::vector<size_t> loads_of(const DiscriminativeRouter& r, const FeatureMatrix& x) {
  std::vector<size_t> loads(r.paths, 0);
  for (size_t i = 0; i < x.rows; ++i) ++loads[static_cast<size_t>(r.route(x.row(i)))];
  return loads;
}

}  // namespace

void DiscriminativeRouter::logits(const float* x, float* out) const {
  for (size_t c = 0; c < paths; ++c) {
    const float* w = weights.data() + c * d;
    float s = 0.0f;
    for (size_t j = 0; j < d; ++j) s += w[j] * ((x[j] - mean[j]) * inv_std[j]);
    out[c] = s + bias[c] + balance[c];
  }
}

int32_t DiscriminativeRouter::route(const float* x) const {
  int32_t best = 0;
  float best_v = -INFINITY;
  for (size_t c = 0; c < paths; ++c) {
    const float* w = weights.data() + c * d;
    float s = 0.0f;
    for (size_t j = 0; j < d; ++j) s += w[j] * ((x[j] - mean[j]) * inv_std[j]);
    s += bias[c] + balance[c];
    if (s > best_v) {
      best_v = s;
      best = static_cast<int32_t>(c);
    }
  }
  return best;
}

Result<DiscriminativeRouter> train_discriminative_router(const FeatureMatrix& x,
                                                         std::span<const int32_t> labels,
                                                         const DiscriminativeRouterOptions& options,
                                                         DiscriminativeRouterReport* report) {
  size_t C = options.paths, n = x.rows, d = x.cols;
  if (C < 2) {
    return invalid_argument("a discriminative router needs at least 2 paths, got " +
                            std::to_string(C));
  }
  DIPACO_RETURN_IF_ERROR(validate_features(x));
  if (n == 0) return invalid_argument("a discriminative router needs training documents, got 0");
  if (labels.size() != n) {
    return invalid_argument(std::to_string(labels.size()) + " labels for " + std::to_string(n) +
                            " documents");
  }
  for (size_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || static_cast<size_t>(labels[i]) >= C) {
      return invalid_argument("label of document " + std::to_string(i) + " is path " +
                              std::to_string(labels[i]) + ", outside [0, " + std::to_string(C) +
                              ")");
    }
  }
  if (!(options.lr > 0) || !(options.l2 >= 0) || options.iterations == 0) {
    return invalid_argument("discriminative router: lr must be > 0, l2 >= 0, iterations >= 1");
  }

  DiscriminativeRouter r;
  r.paths = C;
  r.d = d;
  r.mean.assign(d, 0.0f);
  r.inv_std.assign(d, 1.0f);
  for (size_t j = 0; j < d; ++j) {
    double m = 0, sq = 0;
    for (size_t i = 0; i < n; ++i) m += x.row(i)[j];
    m /= static_cast<double>(n);
    for (size_t i = 0; i < n; ++i) sq += (x.row(i)[j] - m) * (x.row(i)[j] - m);
    double sd = std::sqrt(sq / static_cast<double>(n));
    r.mean[j] = static_cast<float>(m);
    r.inv_std[j] = sd > 1e-12 ? static_cast<float>(1.0 / sd) : 1.0f;
  }
  r.weights.assign(C * d, 0.0f);
  r.bias.assign(C, 0.0f);
  r.balance.assign(C, 0.0f);

  // Standardized copy of the features: n × d.
  std::vector<float> z(n * d);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < d; ++j) z[i * d + j] = (x.row(i)[j] - r.mean[j]) * r.inv_std[j];
  }
  // Parameters θ = [W (C·d), b (C)] and their Adam moments.
  size_t np = C * d + C;
  std::vector<double> grad(np), m1(np, 0.0), m2(np, 0.0);
  std::vector<double> p(C);
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  double loss = 0;
  size_t correct = 0;
  for (size_t t = 1; t <= options.iterations + 1; ++t) {
    std::fill(grad.begin(), grad.end(), 0.0);
    loss = 0;
    correct = 0;
    for (size_t i = 0; i < n; ++i) {
      const float* zi = z.data() + i * d;
      double mx = -INFINITY;
      size_t arg = 0;
      for (size_t c = 0; c < C; ++c) {
        const float* w = r.weights.data() + c * d;
        float s = r.bias[c];
        for (size_t j = 0; j < d; ++j) s += w[j] * zi[j];
        p[c] = s;
        if (p[c] > mx) {
          mx = p[c];
          arg = c;
        }
      }
      size_t y = static_cast<size_t>(labels[i]);
      correct += arg == y;
      double sum = 0;
      for (size_t c = 0; c < C; ++c) sum += (p[c] = std::exp(p[c] - mx));
      loss += -std::log(p[y] / sum);
      for (size_t c = 0; c < C; ++c) {
        double g = p[c] / sum - (c == y ? 1.0 : 0.0);
        double* gw = grad.data() + c * d;
        for (size_t j = 0; j < d; ++j) gw[j] += g * zi[j];
        grad[C * d + c] += g;
      }
    }
    loss /= static_cast<double>(n);
    if (t == options.iterations + 1) break;  // the last pass only measures
    double bc1 = 1 - std::pow(b1, static_cast<double>(t));
    double bc2 = 1 - std::pow(b2, static_cast<double>(t));
    for (size_t k = 0; k < np; ++k) {
      double g = grad[k] / static_cast<double>(n);
      float* param = k < C * d ? &r.weights[k] : &r.bias[k - C * d];
      if (k < C * d) g += options.l2 * *param;
      m1[k] = b1 * m1[k] + (1 - b1) * g;
      m2[k] = b2 * m2[k] + (1 - b2) * g * g;
      *param -= static_cast<float>(options.lr * (m1[k] / bc1) / (std::sqrt(m2[k] / bc2) + eps));
    }
  }
  DiscriminativeRouterReport rep;
  rep.train_loss = loss;
  rep.train_accuracy = static_cast<double>(correct) / static_cast<double>(n);
  if (options.balance) {
    DIPACO_ASSIGN_OR_RETURN(
        rep.loads, balance_router_load(&r, x, options.balance_rounds, options.balance_step,
                                       options.balance_tolerance, &rep.balance_rounds_used));
  } else {
    rep.loads = loads_of(r, x);
  }
  size_t cap = static_cast<size_t>(
      std::floor(static_cast<double>((n + C - 1) / C) * (1 + options.balance_tolerance)));
  rep.balanced = *std::max_element(rep.loads.begin(), rep.loads.end()) <= cap;
  if (report) *report = std::move(rep);
  return r;
}

Result<std::vector<size_t>> balance_router_load(DiscriminativeRouter* router,
                                                const FeatureMatrix& x, size_t rounds, double step,
                                                double tolerance, size_t* rounds_used) {
  DIPACO_RETURN_IF_ERROR(check_router_input(*router, x));
  if (!(step > 0) || !(tolerance >= 0)) {
    return invalid_argument("load balancing: step must be > 0 and tolerance >= 0");
  }
  size_t n = x.rows, C = router->paths;
  double target = static_cast<double>(n) / static_cast<double>(C);
  size_t cap =
      static_cast<size_t>(std::floor(static_cast<double>((n + C - 1) / C) * (1 + tolerance)));
  std::vector<size_t> loads = loads_of(*router, x);
  size_t r = 0;
  for (; r < rounds; ++r) {
    if (*std::max_element(loads.begin(), loads.end()) <= cap) break;
    for (size_t c = 0; c < C; ++c) {
      double load = loads[c] == 0 ? 0.5 : static_cast<double>(loads[c]);
      router->balance[c] -= static_cast<float>(step * std::log(load / target));
    }
    loads = loads_of(*router, x);
  }
  if (rounds_used) *rounds_used = r;
  return loads;
}

Result<std::vector<int32_t>> route_discriminative(const DiscriminativeRouter& router,
                                                  const FeatureMatrix& x) {
  DIPACO_RETURN_IF_ERROR(check_router_input(router, x));
  std::vector<int32_t> out(x.rows);
  for (size_t i = 0; i < x.rows; ++i) out[i] = router.route(x.row(i));
  return out;
}

Result<std::vector<int32_t>> best_path_labels(std::span<const float> losses, size_t n,
                                              size_t paths) {
  if (paths == 0 || losses.size() != n * paths) {
    return invalid_argument(std::to_string(losses.size()) + " losses for " + std::to_string(n) +
                            " documents and " + std::to_string(paths) + " paths");
  }
  std::vector<int32_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    const float* l = losses.data() + i * paths;
    for (size_t c = 0; c < paths; ++c) {
      if (!std::isfinite(l[c])) {
        return invalid_argument("loss of document " + std::to_string(i) + " on path " +
                                std::to_string(c) + " is not finite");
      }
    }
    out[i] = static_cast<int32_t>(std::min_element(l, l + paths) - l);
  }
  return out;
}

}  // namespace dipaco
