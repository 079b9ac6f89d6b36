// Reads a run directory's metrics.jsonl (written by `dipaco run`): one JSON object per line,
// {"outer_step": 3, "path": 0, "val_loss": 7.99}, {"outer_step": 3, "routed_val_loss": 7.97}, or
// a round's traffic {"outer_step": 3, "bytes_up": .., "bytes_down": .., "bytes_path_local": ..,
// "data_parallel_bytes": ..}.
// Unknown keys and lines that are not such objects are skipped (the file may be mid-write).
#pragma once

#include <QByteArray>
#include <QString>
#include <map>
#include <vector>

namespace dipaco::studio {

struct CurvePoint {
  double outer_step = 0;
  double loss = 0;
};

struct RoundTrafficPoint {
  double outer_step = 0;
  double bytes_up = 0, bytes_down = 0, bytes_path_local = 0, data_parallel_bytes = 0;
};

struct RunMetrics {
  std::map<int, std::vector<CurvePoint>> path_val;  // path -> validation curve
  std::vector<CurvePoint> routed_val;
  std::vector<RoundTrafficPoint> traffic;
  int skipped_lines = 0;
  // The routed curve, or the mean over paths per outer step when there is none.
  std::vector<CurvePoint> headline() const;
};

RunMetrics parse_run_metrics(const QByteArray& jsonl);
// `run_dir`/metrics.jsonl; empty metrics when the file is missing.
RunMetrics load_run_metrics(const QString& run_dir);

}  // namespace dipaco::studio
