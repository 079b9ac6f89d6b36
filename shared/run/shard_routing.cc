#include "run/shard_routing.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <sstream>

#include "backend/cpu/cpu_backend.h"
#include "data/json_writer.h"
#include "data/token_file.h"
#include "routing/document_features.h"
#include "routing/random_routing.h"
#include "routing/router.h"
#include "run/document_eval.h"
#include "run/module_files.h"
#include "train/token_batch_source.h"
#include "util/atomic_file.h"
#include "util/progress.h"

namespace dipaco {

namespace {

// Loads or trains the base model; returns its parameters (grid.model layout).
Result<std::vector<float>> obtain_base(const GridSpec& grid, const RunLayout& layout,
                                       Backend* backend, FILE* out) {
  if (std::filesystem::exists(layout.base_model())) {
    DIPACO_ASSIGN_OR_RETURN(auto base, read_path_model(layout.base_model()));
    if (!(base.first == grid.model))
      return failed_precondition(layout.base_model() + " is for another model (" +
                                 base.first.difference(grid.model) +
                                 "); remove the run directory or use another run.dir");
    return std::move(base.second);
  }
  if (!grid.routing.base_checkpoint.empty()) {
    DIPACO_ASSIGN_OR_RETURN(auto base, read_path_model(grid.routing.base_checkpoint));
    if (!(base.first == grid.model)) {
      return invalid_argument("routing.base_checkpoint " + grid.routing.base_checkpoint +
                              " is a model with " + base.first.difference(grid.model) +
                              " than the grid's [model]; they must match");
    }
    DIPACO_RETURN_IF_ERROR(write_path_model(layout.base_model(), grid.model, 0, base.second));
    std::fprintf(out, "base model: %s\n", grid.routing.base_checkpoint.c_str());
    return std::move(base.second);
  }
  TrainOptions o = grid.inner;
  o.steps = grid.routing.base_steps;
  o.warmup_steps = std::min<int64_t>(o.warmup_steps, std::max<int64_t>(1, o.steps / 10));
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> trainer,
                          Trainer::create(backend, grid.model, o));
  trainer->model().init_params(grid.seed);
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<TokenBatchSource> source,
                          TokenBatchSource::open(grid.train_tokens, o.batch_size, o.seq_len,
                                                 grid.data_seed ^ 0xba5eULL));
  std::fprintf(out, "base model: training %lld dense steps for routing features%s\n",
               static_cast<long long>(o.steps), grid.warm_start ? " and warm start" : "");
  std::fflush(out);
  Progress progress("base model", static_cast<uint64_t>(o.steps), "steps", out);
  double loss = 0;
  for (int64_t s = 0; s < o.steps; ++s) {
    DIPACO_ASSIGN_OR_RETURN(StepStats stats, trainer->train_step(*source));
    loss = stats.loss;
    progress.advance();
  }
  progress.finish();
  std::fprintf(out, "base model: final train loss %.4f\n", loss);
  std::vector<float> params = trainer->model().get_params();
  DIPACO_RETURN_IF_ERROR(write_path_model(layout.base_model(), grid.model, 0, params));
  return params;
}

// Mean loss of each document's first `tokens` tokens under each path of a finished run.
Result<std::vector<float>> score_documents(const GridSpec& grid, const TokenFile& train,
                                           Backend* backend, FILE* out) {
  const size_t n = train.num_documents();
  const auto paths = static_cast<size_t>(grid.num_paths());
  const int T = std::min(grid.routing.label_tokens - 1, grid.model.max_seq_len);
  std::vector<float> losses(n * paths, 0.0f);
  DIPACO_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::create(backend, grid.model, 1, T));
  std::vector<int32_t> window(static_cast<size_t>(T) + 1), inputs(static_cast<size_t>(T)),
      targets(static_cast<size_t>(T));
  Progress progress("scoring documents per path", n * paths, "docs", out);
  for (size_t p = 0; p < paths; ++p) {
    RunLayout from{grid.routing.paths_from};
    auto path = read_path_model(from.path_model(static_cast<uint32_t>(p)));
    if (!path.is_ok()) {
      return failed_precondition("routing.paths_from: " + path.status().message() +
                                 " (run that grid to the end first)");
    }
    if (!(path->first == grid.model)) {
      return invalid_argument("routing.paths_from: path " + std::to_string(p) + " has " +
                              path->first.difference(grid.model) + " than this grid's model");
    }
    model->set_params(path->second);
    for (size_t d = 0; d < n; ++d) {
      uint64_t begin = train.document_begin(d), len = train.document_end(d) - begin;
      int L = static_cast<int>(std::min<uint64_t>(len, static_cast<uint64_t>(T) + 1));
      if (L < 2) {
        losses[d * paths + p] = 0.0f;  // too short to score: every path ties
        continue;
      }
      train.read(begin, static_cast<uint64_t>(L), window.data());
      std::fill(targets.begin(), targets.end(), -1);
      std::fill(inputs.begin(), inputs.end(), 0);
      for (int t = 0; t + 1 < L; ++t) {
        inputs[static_cast<size_t>(t)] = window[static_cast<size_t>(t)];
        targets[static_cast<size_t>(t)] = window[static_cast<size_t>(t) + 1];
      }
      losses[d * paths + p] =
          static_cast<float>(model->forward(inputs.data(), targets.data(), 1, T));
      progress.advance();
    }
  }
  progress.finish();
  return losses;
}

Status write_documents(const std::string& path, const TokenFile& source,
                       const std::vector<TokenSpan>& spans, uint32_t vocab) {
  std::vector<std::vector<uint32_t>> docs;
  docs.reserve(spans.size());
  for (const TokenSpan& s : spans) {
    std::vector<uint32_t> ids(s.end - s.begin);
    for (uint64_t i = s.begin; i < s.end; ++i) ids[i - s.begin] = source.token(i);
    docs.push_back(std::move(ids));
  }
  return write_token_file(path, vocab, docs);
}

Result<ShardPlan> read_plan(const GridSpec& grid, const RunLayout& layout) {
  ShardPlan plan;
  for (int s = 0; s < grid.num_shards(); ++s) {
    DIPACO_ASSIGN_OR_RETURN(TokenFile f, TokenFile::open(layout.shard(static_cast<uint32_t>(s))));
    plan.shard_tokens.push_back(f.num_tokens());
    plan.shard_documents.push_back(f.num_documents());
  }
  for (int p = 0; p < grid.num_paths(); ++p) {
    const std::string val = layout.val_shard(static_cast<uint32_t>(p));
    uint64_t tokens = 0, docs = 0;
    if (std::filesystem::exists(val)) {
      DIPACO_ASSIGN_OR_RETURN(TokenFile f, TokenFile::open(val));
      tokens = f.num_tokens();
      docs = f.num_documents();
      if (grid.routing.reroute_every > 0) {
        DIPACO_ASSIGN_OR_RETURN(ScoredPredictions scored,
                                read_val_predictions(grid, layout, static_cast<uint32_t>(p), f));
        tokens = scored_tokens(scored);
      }
    }
    plan.val_tokens.push_back(tokens);
    plan.val_documents.push_back(docs);
  }
  plan.have_base = std::filesystem::exists(layout.base_model());
  return plan;
}

}  // namespace

std::string val_predictions_file(const RunLayout& layout, uint32_t path_id) {
  return layout.shards_dir() + "/val-" + std::to_string(path_id) + ".predictions";
}

Result<ScoredPredictions> read_val_predictions(const GridSpec& grid, const RunLayout& layout,
                                               uint32_t path_id, const TokenFile& val_shard) {
  const std::string file = val_predictions_file(layout, path_id);
  if (!std::filesystem::exists(file)) {
    return failed_precondition(
        layout.val_shard(path_id) + " has no " + file +
        ": with routing.reroute_every = " + std::to_string(grid.routing.reroute_every) +
        " its shards were made by an older dipaco, which cut validation documents into "
        "segments scored without their context; run this grid in a new run.dir");
  }
  return read_scored_predictions(file, val_shard);
}

Result<ShardPlan> prepare_shards(const GridSpec& grid, const RunLayout& layout, int threads,
                                 FILE* out) {
  CpuBackend backend(threads);
  return prepare_shards(grid, layout, &backend, out);
}

Result<ShardPlan> prepare_shards(const GridSpec& grid, const RunLayout& layout, Backend* backend,
                                 FILE* out) {
  if (std::filesystem::exists(layout.routing_json())) return read_plan(grid, layout);
  std::error_code ec;
  std::filesystem::create_directories(layout.shards_dir(), ec);
  if (ec) return io_error(layout.shards_dir() + ": cannot create: " + ec.message());

  DIPACO_ASSIGN_OR_RETURN(TokenFile train, TokenFile::open(grid.train_tokens));
  std::optional<TokenFile> val;
  if (!grid.val_tokens.empty()) {
    DIPACO_ASSIGN_OR_RETURN(TokenFile v, TokenFile::open(grid.val_tokens));
    val = std::move(v);
  }
  const uint32_t vocab = static_cast<uint32_t>(grid.model.vocab_size);
  const size_t clusters = static_cast<size_t>(grid.routing_clusters());
  const RoutingSpec& rs = grid.routing;
  const size_t n = train.num_documents();
  if (n < clusters) {
    return invalid_argument(grid.train_tokens + " has " + std::to_string(n) +
                            " documents, fewer than the " + std::to_string(clusters) +
                            " paths/shards to route them to");
  }
  const bool need_base = grid.warm_start || rs.method != RoutingMethod::kRandom;
  Router router;
  router.method = rs.method;
  router.clusters = clusters;
  router.seed = grid.seed;
  router.prefix_tokens = rs.prefix_tokens;
  router.reroute_every = rs.reroute_every;

  std::vector<std::array<int32_t, 2>> assign(n, {0, -1});
  std::vector<float> train_features;
  std::unique_ptr<Model> feature_model;
  if (need_base) {
    DIPACO_ASSIGN_OR_RETURN(std::vector<float> base, obtain_base(grid, layout, backend, out));
    DIPACO_ASSIGN_OR_RETURN(
        feature_model, Model::create(backend, grid.model, kRoutingFeatureBatch, rs.prefix_tokens));
    feature_model->set_params(base);
    std::vector<TokenSpan> spans = document_spans(train);
    DIPACO_ASSIGN_OR_RETURN(train_features,
                            compute_span_features(*feature_model, train, spans, rs.prefix_tokens));
    router.d = static_cast<size_t>(grid.model.d_model);
  }
  FeatureMatrix x{train_features, n, router.d};
  KMeansOptions km;
  km.k = rs.method == RoutingMethod::kProductKMeans
             ? static_cast<size_t>(std::lround(std::sqrt(static_cast<double>(clusters))))
             : clusters;
  km.seed = grid.seed;
  km.balanced = rs.balanced;
  switch (rs.method) {
    case RoutingMethod::kKMeans: {
      DIPACO_ASSIGN_OR_RETURN(KMeansResult fit, fit_kmeans(x, km));
      router.kmeans = fit.model;
      for (size_t i = 0; i < n; ++i) assign[i][0] = fit.assignment[i];
      break;
    }
    case RoutingMethod::kProductKMeans: {
      DIPACO_ASSIGN_OR_RETURN(ProductKMeansResult fit, fit_product_kmeans(x, km));
      router.product = fit.model;
      std::vector<int32_t> shards = fit.assignment;
      if (rs.balanced) {
        DIPACO_ASSIGN_OR_RETURN(shards, assign_product_balanced(fit.model, x));
      }
      for (size_t i = 0; i < n; ++i) assign[i][0] = shards[i];
      break;
    }
    case RoutingMethod::kDiscriminative: {
      DIPACO_ASSIGN_OR_RETURN(std::vector<float> losses,
                              score_documents(grid, train, backend, out));
      DIPACO_ASSIGN_OR_RETURN(std::vector<int32_t> labels, best_path_labels(losses, n, clusters));
      DiscriminativeRouterOptions o;
      o.paths = clusters;
      o.balance = rs.balanced;
      DiscriminativeRouterReport report;
      DIPACO_ASSIGN_OR_RETURN(router.discriminative,
                              train_discriminative_router(x, labels, o, &report));
      std::fprintf(out,
                   "discriminative router: train accuracy %.3f on best-path labels, loss %.4f, "
                   "balanced %s\n",
                   report.train_accuracy, report.train_loss, report.balanced ? "yes" : "no");
      DIPACO_ASSIGN_OR_RETURN(std::vector<int32_t> routed,
                              route_discriminative(router.discriminative, x));
      for (size_t i = 0; i < n; ++i) assign[i][0] = routed[i];
      break;
    }
    case RoutingMethod::kRandom: {
      DIPACO_ASSIGN_OR_RETURN(std::vector<int32_t> routed, random_routing(n, clusters, grid.seed));
      for (size_t i = 0; i < n; ++i) assign[i][0] = routed[i];
      break;
    }
  }
  if (rs.top2) {
    for (size_t i = 0; i < n; ++i) {
      if (rs.method == RoutingMethod::kRandom) {
        assign[i][1] = static_cast<int32_t>(
            (static_cast<size_t>(assign[i][0]) + 1 + (i * 7919 + grid.seed) % (clusters - 1)) %
            clusters);
      } else {
        std::array<int32_t, 2> two = router.route_top2(x.row(i));
        assign[i][1] = two[0] == assign[i][0] ? two[1] : two[0];
      }
    }
  }

  // Training shards.
  const int S = grid.shards_per_path;
  const int P = grid.num_paths();
  std::vector<std::vector<TokenSpan>> shard_docs(static_cast<size_t>(grid.num_shards()));
  std::vector<std::vector<uint64_t>> cluster_docs(clusters);
  for (size_t i = 0; i < n; ++i)
    for (int32_t c : assign[i])
      if (c >= 0) cluster_docs[static_cast<size_t>(c)].push_back(i);
  for (size_t c = 0; c < clusters; ++c) {
    if (cluster_docs[c].empty()) {
      return failed_precondition("routing sent no training documents to " +
                                 std::string(P > 1 ? "path " : "shard ") + std::to_string(c) +
                                 " of " + std::to_string(clusters) +
                                 "; use routing.balanced = true, fewer paths, or more data");
    }
    std::vector<int32_t> replica(cluster_docs[c].size(), 0);
    if (P > 1 && S > 1) {
      DIPACO_ASSIGN_OR_RETURN(
          replica, random_routing(cluster_docs[c].size(), static_cast<size_t>(S), grid.seed + c));
    }
    for (size_t j = 0; j < cluster_docs[c].size(); ++j) {
      size_t shard = P > 1 ? c * static_cast<size_t>(S) + static_cast<size_t>(replica[j]) : c;
      uint64_t d = cluster_docs[c][j];
      shard_docs[shard].push_back({train.document_begin(d), train.document_end(d)});
    }
  }
  const uint64_t window = static_cast<uint64_t>(grid.inner.seq_len) + 1;
  for (size_t s = 0; s < shard_docs.size(); ++s) {
    uint64_t tokens = 0;
    for (const TokenSpan& t : shard_docs[s]) tokens += t.end - t.begin;
    if (tokens < window) {
      return failed_precondition("shard " + std::to_string(s) + " has " + std::to_string(tokens) +
                                 " tokens, fewer than one training window of " +
                                 std::to_string(window) + "; use fewer shards or more data");
    }
    DIPACO_RETURN_IF_ERROR(
        write_documents(layout.shard(static_cast<uint32_t>(s)), train, shard_docs[s], vocab));
  }

  // Validation: whole documents, each prediction scored by the path its segment is routed to
  // (document_eval.h); without re-routing a document is one segment.
  if (val) {
    struct Piece {
      uint64_t document;
      PredictionRange predictions;
    };
    std::vector<Piece> pieces;
    std::vector<TokenSpan> context;
    for (uint64_t d = 0; d < val->num_documents(); ++d) {
      uint64_t b = val->document_begin(d), e = val->document_end(d);
      if (e - b < 2) continue;
      if (rs.reroute_every == 0) {
        pieces.push_back({d, {0, e - b - 1}});
        context.push_back({b, e});
        continue;
      }
      for (const RerouteSegment& s :
           reroute_segments(e - b, static_cast<uint64_t>(rs.reroute_every),
                            static_cast<uint64_t>(rs.prefix_tokens))) {
        pieces.push_back({d, s.predictions});
        context.push_back({b + s.route_begin, b + s.route_end});
      }
    }
    std::vector<int32_t> val_route(pieces.size(), 0);
    if (feature_model) {
      DIPACO_ASSIGN_OR_RETURN(
          std::vector<float> f,
          compute_span_features(*feature_model, *val, context, rs.prefix_tokens));
      for (size_t i = 0; i < pieces.size(); ++i)
        val_route[i] = router.route(f.data() + i * router.d);
    } else if (clusters > 1) {
      DIPACO_ASSIGN_OR_RETURN(val_route, random_routing(pieces.size(), clusters, grid.seed + 1));
    }
    // Per path: the documents it scores predictions of, and those predictions.
    std::vector<std::vector<TokenSpan>> per_path(static_cast<size_t>(P));
    std::vector<ScoredPredictions> scored(static_cast<size_t>(P));
    std::vector<uint64_t> last_document(static_cast<size_t>(P), UINT64_MAX);
    for (size_t i = 0; i < pieces.size(); ++i) {
      // With one path the clusters are its shards; every piece belongs to path 0.
      size_t p = P > 1 ? static_cast<size_t>(val_route[i]) : 0;
      const Piece& piece = pieces[i];
      if (last_document[p] != piece.document) {
        last_document[p] = piece.document;
        per_path[p].push_back(
            {val->document_begin(piece.document), val->document_end(piece.document)});
        scored[p].emplace_back();
      }
      std::vector<PredictionRange>& ranges = scored[p].back();
      if (!ranges.empty() && ranges.back().end == piece.predictions.begin) {
        ranges.back().end = piece.predictions.end;
      } else {
        ranges.push_back(piece.predictions);
      }
    }
    for (int p = 0; p < P; ++p) {
      const auto path = static_cast<uint32_t>(p);
      if (per_path[path].empty()) continue;
      DIPACO_RETURN_IF_ERROR(write_documents(layout.val_shard(path), *val, per_path[path], vocab));
      if (rs.reroute_every > 0) {
        DIPACO_RETURN_IF_ERROR(
            write_scored_predictions(val_predictions_file(layout, path), scored[path]));
      }
    }
  }
  if (feature_model) DIPACO_RETURN_IF_ERROR(save_router(router, layout.router()));

  DIPACO_ASSIGN_OR_RETURN(ShardPlan plan, read_plan(grid, layout));
  std::ostringstream j;
  j << "{\"format\": \"dipaco-routing/1\", \"method\": "
    << json_quote(routing_method_name(rs.method)) << ", \"clusters\": " << clusters
    << ", \"top2\": " << (rs.top2 ? "true" : "false") << ",\n \"shards\": [";
  for (size_t s = 0; s < plan.shard_tokens.size(); ++s) {
    j << (s ? ", " : "") << "{\"id\": " << s << ", \"documents\": " << plan.shard_documents[s]
      << ", \"tokens\": " << plan.shard_tokens[s] << "}";
  }
  j << "],\n \"val\": [";
  for (size_t p = 0; p < plan.val_tokens.size(); ++p) {
    j << (p ? ", " : "") << "{\"path\": " << p << ", \"documents\": " << plan.val_documents[p]
      << ", \"tokens\": " << plan.val_tokens[p] << "}";
  }
  j << "],\n \"train_assignment\": [";
  for (size_t i = 0; i < n; ++i) {
    j << (i ? ", " : "") << "[" << assign[i][0];
    if (assign[i][1] >= 0) j << ", " << assign[i][1];
    j << "]";
  }
  j << "]}\n";
  DIPACO_RETURN_IF_ERROR(write_file_atomically(layout.routing_json(), j.str()));
  return plan;
}

}  // namespace dipaco
