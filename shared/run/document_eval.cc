#include "run/document_eval.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include "util/atomic_file.h"

namespace dipaco {

namespace {

constexpr const char* kScoredPredictionsFormat = "dipaco-val-predictions/1";

// mask[i] != 0 when prediction i of a document of `predictions` predictions is scored.
void mark_scored(const std::vector<PredictionRange>& ranges, uint64_t predictions,
                 std::vector<char>* mask) {
  mask->assign(predictions, 0);
  for (const PredictionRange& r : ranges)
    std::fill(mask->begin() + static_cast<std::ptrdiff_t>(r.begin),
              mask->begin() + static_cast<std::ptrdiff_t>(r.end), 1);
}

}  // namespace

std::vector<RerouteSegment> reroute_segments(uint64_t tokens, uint64_t reroute_every,
                                             uint64_t prefix_tokens) {
  std::vector<RerouteSegment> segments;
  if (tokens < 2 || reroute_every == 0) return segments;
  const uint64_t predictions = tokens - 1;
  for (uint64_t begin = 0; begin < predictions; begin += reroute_every) {
    RerouteSegment s;
    s.predictions = {begin, std::min(predictions, begin + reroute_every)};
    // Prediction `begin` reads tokens 0..begin: route on the last prefix_tokens of them.
    const uint64_t point = begin + 1;
    s.route_begin = begin == 0 ? 0 : point - std::min(prefix_tokens, point);
    s.route_end = begin == 0 ? tokens : point;
    segments.push_back(s);
  }
  return segments;
}

EvalSum evaluate_documents(Model& model, const TokenFile& file, uint64_t max_tokens,
                           const ScoredPredictions* only) {
  const int B = model.max_batch(), T = model.max_seq_len();
  std::vector<int32_t> inputs(static_cast<size_t>(B) * T), targets(inputs.size()),
      window(static_cast<size_t>(T) + 1);
  std::vector<char> scored;
  EvalSum sum;
  int rows = 0;
  uint64_t counted = 0;
  auto flush = [&] {
    if (rows == 0) return;
    double mean = model.forward(inputs.data(), targets.data(), rows, T);
    sum.loss_sum += mean * static_cast<double>(counted);
    sum.tokens += counted;
    rows = 0;
    counted = 0;
  };
  for (uint64_t d = 0; d < file.num_documents(); ++d) {
    const uint64_t begin = file.document_begin(d), end = file.document_end(d);
    if (only != nullptr) {
      if ((*only)[d].empty()) continue;
      mark_scored((*only)[d], end - begin - 1, &scored);
    }
    for (uint64_t s = begin; s + 1 < end; s += static_cast<uint64_t>(T)) {
      if (max_tokens != 0 && sum.tokens + counted >= max_tokens) break;
      const auto len = static_cast<int>(std::min<uint64_t>(end - s, static_cast<uint64_t>(T) + 1));
      int here = len - 1;  // predictions of this window that count
      if (only != nullptr) {
        const auto first = static_cast<std::ptrdiff_t>(s - begin);
        here = static_cast<int>(
            std::count(scored.begin() + first, scored.begin() + first + len - 1, 1));
        if (here == 0) continue;
      }
      file.read(s, static_cast<uint64_t>(len), window.data());
      int32_t* in = inputs.data() + static_cast<size_t>(rows) * T;
      int32_t* tg = targets.data() + static_cast<size_t>(rows) * T;
      std::fill(in, in + T, 0);
      std::fill(tg, tg + T, -1);
      for (int t = 0; t + 1 < len; ++t) {
        in[t] = window[static_cast<size_t>(t)];
        if (only == nullptr || scored[s - begin + static_cast<uint64_t>(t)] != 0)
          tg[t] = window[static_cast<size_t>(t) + 1];
      }
      counted += static_cast<uint64_t>(here);
      if (++rows == B) flush();
    }
  }
  flush();
  return sum;
}

uint64_t scored_tokens(const ScoredPredictions& predictions) {
  uint64_t tokens = 0;
  for (const auto& ranges : predictions) {
    for (const PredictionRange& r : ranges) tokens += r.end - r.begin;
    if (!ranges.empty() && ranges.front().begin == 0) ++tokens;
  }
  return tokens;
}

Status write_scored_predictions(const std::string& file, const ScoredPredictions& predictions) {
  std::ostringstream text;
  text << kScoredPredictionsFormat << "\n" << predictions.size() << "\n";
  for (const auto& ranges : predictions) {
    text << ranges.size();
    for (const PredictionRange& r : ranges) text << " " << r.begin << " " << r.end;
    text << "\n";
  }
  return write_file_atomically(file, text.str());
}

Result<ScoredPredictions> read_scored_predictions(const std::string& file,
                                                  const TokenFile& documents) {
  DIPACO_ASSIGN_OR_RETURN(std::string bytes, read_file(file));
  std::istringstream text(bytes);
  auto broken = [&](const std::string& what) {
    return data_loss(file + ": " + what +
                     "; the run's shards are damaged: run this grid in a new run.dir");
  };
  std::string format;
  uint64_t count = 0;
  if (!(text >> format) || format != kScoredPredictionsFormat)
    return broken("not a " + std::string(kScoredPredictionsFormat) + " file");
  if (!(text >> count) || count != documents.num_documents())
    return broken("lists " + std::to_string(count) + " documents, its shard has " +
                  std::to_string(documents.num_documents()));
  ScoredPredictions out(count);
  for (uint64_t d = 0; d < count; ++d) {
    const uint64_t doc_tokens = documents.document_end(d) - documents.document_begin(d);
    const uint64_t predictions = doc_tokens < 2 ? 0 : doc_tokens - 1;
    uint64_t ranges = 0, previous_end = 0;
    if (!(text >> ranges) || ranges > predictions)
      return broken("document " + std::to_string(d) + " has a bad range count");
    for (uint64_t r = 0; r < ranges; ++r) {
      PredictionRange range;
      if (!(text >> range.begin >> range.end) || range.begin >= range.end ||
          range.begin < previous_end || range.end > predictions)
        return broken("document " + std::to_string(d) + " has a bad prediction range");
      previous_end = range.end;
      out[d].push_back(range);
    }
  }
  return out;
}

}  // namespace dipaco
