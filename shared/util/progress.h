// Progress: reports how far a long step is (items/s and ETA).
//
// On a terminal it redraws one line at most 10 times a second; otherwise (logs, CI, pipes) it
// prints a plain line at most every `plain_interval_s` seconds, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace dipaco {

class Progress {
 public:
  // total = 0 when the total is not known (no percentage or ETA then).
  Progress(std::string label, uint64_t total, std::string unit, FILE* out = stderr);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void set_total(uint64_t total) { total_ = total; }
  void advance(uint64_t n = 1) { update(done_ + n); }
  void update(uint64_t done);

  // Counts a second quantity beside the items (tokens beside documents): the line then shows
  // its rate instead of the items' ("3/10 docs (30%), 4.1k tokens/s, ETA 0:12"), and the ETA
  // comes from it when `total` (of that quantity) is known, since items may differ in size.
  void set_rate_unit(std::string unit, uint64_t total = 0);
  // advance(items) with `amount` more of the rate unit.
  void advance(uint64_t items, uint64_t amount) {
    rate_done_ += amount;
    update(done_ + items);
  }
  // Prints the final line (once); called by the destructor if not called before.
  void finish();

  // Forces plain output (tests); the default is chosen by isatty().
  void set_interactive(bool interactive) { interactive_ = interactive; }
  void set_plain_interval_seconds(double seconds) { plain_interval_s_ = seconds; }

  // "12.3k docs/s, ETA 0:42" style line for the current state; exposed for tests.
  std::string line() const;

 private:
  void print(bool final_line);

  std::string label_;
  uint64_t total_;
  std::string unit_;
  FILE* out_;
  bool interactive_;
  double plain_interval_s_ = 5.0;
  uint64_t done_ = 0;
  std::string rate_unit_;  // empty: the rate is of items
  uint64_t rate_total_ = 0;
  uint64_t rate_done_ = 0;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
};

}  // namespace dipaco
