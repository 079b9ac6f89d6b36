#include "run_metrics.h"

#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QList>

namespace dipaco::studio {

std::vector<CurvePoint> RunMetrics::headline() const {
  if (!routed_val.empty()) return routed_val;
  std::map<double, std::pair<double, int>> sums;
  for (const auto& [path, curve] : path_val) {
    for (const CurvePoint& p : curve) {
      sums[p.outer_step].first += p.loss;
      sums[p.outer_step].second += 1;
    }
  }
  std::vector<CurvePoint> out;
  for (const auto& [step, sum] : sums) out.push_back({step, sum.first / sum.second});
  return out;
}

RunMetrics parse_run_metrics(const QByteArray& jsonl) {
  RunMetrics m;
  const QList<QByteArray> lines = jsonl.split('\n');
  for (const QByteArray& raw : lines) {
    const QByteArray line = raw.trimmed();
    if (line.isEmpty()) continue;
    QJsonParseError error{};
    const QJsonDocument doc = QJsonDocument::fromJson(line, &error);
    if (error.error != QJsonParseError::NoError || !doc.isObject()) {
      ++m.skipped_lines;
      continue;
    }
    const QJsonObject o = doc.object();
    if (!o.contains(QStringLiteral("outer_step"))) {
      ++m.skipped_lines;
      continue;
    }
    const double step = o.value(QStringLiteral("outer_step")).toDouble();
    if (o.contains(QStringLiteral("routed_val_loss"))) {
      m.routed_val.push_back({step, o.value(QStringLiteral("routed_val_loss")).toDouble()});
    } else if (o.contains(QStringLiteral("data_parallel_bytes"))) {
      RoundTrafficPoint t;
      t.outer_step = step;
      t.bytes_up = o.value(QStringLiteral("bytes_up")).toDouble();
      t.bytes_down = o.value(QStringLiteral("bytes_down")).toDouble();
      t.bytes_path_local = o.value(QStringLiteral("bytes_path_local")).toDouble();
      t.data_parallel_bytes = o.value(QStringLiteral("data_parallel_bytes")).toDouble();
      m.traffic.push_back(t);
    } else if (o.contains(QStringLiteral("val_loss")) && o.contains(QStringLiteral("path"))) {
      m.path_val[o.value(QStringLiteral("path")).toInt()].push_back(
          {step, o.value(QStringLiteral("val_loss")).toDouble()});
    } else {
      ++m.skipped_lines;
    }
  }
  return m;
}

RunMetrics load_run_metrics(const QString& run_dir) {
  QFile f(run_dir + QStringLiteral("/metrics.jsonl"));
  if (!f.open(QIODevice::ReadOnly)) return {};
  return parse_run_metrics(f.readAll());
}

}  // namespace dipaco::studio
