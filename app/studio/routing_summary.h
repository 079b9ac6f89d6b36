// RoutingSummary: how a run's documents were split among its paths, from the run directory's
// routing.json (written last by the routing stage, shared/run/shard_routing.h) and grid.toml
// (which shards belong to which path: shard id = path * shards_per_path + replica).
#pragma once

#include <QByteArray>
#include <QString>
#include <cstdint>
#include <vector>

#include "util/status.h"

namespace dipaco::studio {

struct PathShardSizes {
  int path = 0;
  std::vector<int> shards;  // shard ids of this path
  uint64_t train_tokens = 0, train_documents = 0;
  uint64_t val_tokens = 0, val_documents = 0;
};

struct RoutingSummary {
  QString method;  // "kmeans", "product_kmeans", "discriminative", "random"
  int clusters = 0;
  bool top2 = false;
  std::vector<PathShardSizes> paths;  // by path id
  uint64_t train_tokens() const;
};

// Parses routing.json's text; `shards_per_path` groups shards into paths (shards beyond the
// last whole path are an error that names the counts). `source` names the file in errors.
Result<RoutingSummary> parse_routing_json(const QByteArray& text, int shards_per_path,
                                          const QString& source);
// `run_dir`/routing.json with shards_per_path from `run_dir`/grid.toml, else (a directory that
// was only planned, no run yet) `shards_per_path_without_grid`. Errors say what to do: a run
// that has not routed yet, an unreadable file.
Result<RoutingSummary> load_routing_summary(const QString& run_dir,
                                            int shards_per_path_without_grid = 1);

}  // namespace dipaco::studio
