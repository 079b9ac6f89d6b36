#include "util/progress.h"

#include <unistd.h>

#include <cmath>

namespace dipaco {
namespace {

std::string human_rate(double per_second) {
  char buffer[32];
  if (per_second >= 1e6) {
    std::snprintf(buffer, sizeof buffer, "%.1fM", per_second / 1e6);
  } else if (per_second >= 1e4) {
    std::snprintf(buffer, sizeof buffer, "%.1fk", per_second / 1e3);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f", per_second);
  }
  return buffer;
}

std::string clock_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  auto s = static_cast<long long>(seconds + 0.5);
  char buffer[32];
  if (s >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld", s / 60, s % 60);
  }
  return buffer;
}

}  // namespace

Progress::Progress(std::string label, uint64_t total, std::string unit, FILE* out)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      out_(out),
      interactive_(isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

Progress::~Progress() {
  finish();
}

void Progress::update(uint64_t done) {
  done_ = done;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_print_).count();
  if (since >= (interactive_ ? 0.1 : plain_interval_s_)) {
    last_print_ = now;
    print(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  print(true);
}

void Progress::set_rate_unit(std::string unit, uint64_t total) {
  rate_unit_ = std::move(unit);
  rate_total_ = total;
}

std::string Progress::line() const {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const bool by_amount = !rate_unit_.empty();
  const uint64_t counted = by_amount ? rate_done_ : done_;
  const uint64_t to_count = by_amount ? rate_total_ : total_;
  double rate = elapsed > 0 ? static_cast<double>(counted) / elapsed : 0.0;
  std::string text = label_ + ": " + std::to_string(done_);
  if (total_ > 0) {
    char pct[16];
    std::snprintf(pct, sizeof pct, " (%.0f%%)",
                  100.0 * static_cast<double>(done_) / static_cast<double>(total_));
    text += "/" + std::to_string(total_) + " " + unit_ + pct;
  } else {
    text += " " + unit_;
  }
  text += ", " + human_rate(rate) + " " + (by_amount ? rate_unit_ : unit_) + "/s";
  if (to_count > 0 && counted < to_count && rate > 0) {
    text += ", ETA " + clock_text(static_cast<double>(to_count - counted) / rate);
  } else {
    text += ", " + clock_text(elapsed) + " elapsed";
  }
  return text;
}

void Progress::print(bool final_line) {
  if (interactive_) {
    std::fprintf(out_, "\r\033[K%s%s", line().c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(out_, "%s\n", line().c_str());
  }
  std::fflush(out_);
}

}  // namespace dipaco
