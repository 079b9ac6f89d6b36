#include "routing_summary.h"

#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

#include "algo/grid_spec.h"

namespace dipaco::studio {

uint64_t RoutingSummary::train_tokens() const {
  uint64_t sum = 0;
  for (const PathShardSizes& p : paths) sum += p.train_tokens;
  return sum;
}

namespace {
uint64_t count(const QJsonObject& o, const char* key) {
  return static_cast<uint64_t>(o.value(QLatin1String(key)).toDouble());
}
}  // namespace

Result<RoutingSummary> parse_routing_json(const QByteArray& text, int shards_per_path,
                                          const QString& source) {
  const std::string where = source.toStdString();
  QJsonParseError error{};
  const QJsonDocument doc = QJsonDocument::fromJson(text, &error);
  if (error.error != QJsonParseError::NoError || !doc.isObject())
    return invalid_argument(where + ": not JSON (" + error.errorString().toStdString() + ")");
  const QJsonObject root = doc.object();
  if (root.value(QStringLiteral("format")).toString() != QStringLiteral("dipaco-routing/1"))
    return invalid_argument(where + ": format is not \"dipaco-routing/1\"");
  if (shards_per_path < 1)
    return invalid_argument(where + ": shards_per_path " + std::to_string(shards_per_path) +
                            " must be at least 1");
  RoutingSummary summary;
  summary.method = root.value(QStringLiteral("method")).toString();
  summary.clusters = root.value(QStringLiteral("clusters")).toInt();
  summary.top2 = root.value(QStringLiteral("top2")).toBool();
  const QJsonArray shards = root.value(QStringLiteral("shards")).toArray();
  if (shards.isEmpty()) return invalid_argument(where + ": no shards");
  if (shards.size() % shards_per_path != 0) {
    return invalid_argument(where + ": " + std::to_string(shards.size()) +
                            " shards do not split into paths of " +
                            std::to_string(shards_per_path) + " shards (grid.shards_per_path)");
  }
  const int num_paths = static_cast<int>(shards.size()) / shards_per_path;
  summary.paths.resize(static_cast<size_t>(num_paths));
  for (int p = 0; p < num_paths; ++p) summary.paths[static_cast<size_t>(p)].path = p;
  for (const QJsonValue& v : shards) {
    const QJsonObject s = v.toObject();
    const int id = s.value(QStringLiteral("id")).toInt(-1);
    if (id < 0 || id >= static_cast<int>(shards.size()))
      return invalid_argument(where + ": shard id " + std::to_string(id) + " out of range");
    PathShardSizes& path = summary.paths[static_cast<size_t>(id / shards_per_path)];
    path.shards.push_back(id);
    path.train_tokens += count(s, "tokens");
    path.train_documents += count(s, "documents");
  }
  for (const QJsonValue& v : root.value(QStringLiteral("val")).toArray()) {
    const QJsonObject s = v.toObject();
    const int p = s.value(QStringLiteral("path")).toInt(-1);
    if (p < 0 || p >= num_paths) continue;  // validation without a training path: not drawn
    summary.paths[static_cast<size_t>(p)].val_tokens += count(s, "tokens");
    summary.paths[static_cast<size_t>(p)].val_documents += count(s, "documents");
  }
  return summary;
}

Result<RoutingSummary> load_routing_summary(const QString& run_dir,
                                            int shards_per_path_without_grid) {
  const QString path = run_dir + QStringLiteral("/routing.json");
  QFile file(path);
  if (!file.exists()) {
    return not_found(path.toStdString() +
                     ": missing: the run has not routed its documents yet (start it, or plan "
                     "the shards of the grid here)");
  }
  if (!file.open(QIODevice::ReadOnly))
    return io_error(path.toStdString() + ": cannot read: " + file.errorString().toStdString());
  int shards_per_path = shards_per_path_without_grid;
  const QString grid_file = run_dir + QStringLiteral("/grid.toml");
  if (QFileInfo::exists(grid_file)) {
    DIPACO_ASSIGN_OR_RETURN(GridSpec grid, load_grid_spec(grid_file.toStdString()));
    shards_per_path = grid.shards_per_path;
  }
  return parse_routing_json(file.readAll(), shards_per_path, path);
}

}  // namespace dipaco::studio
