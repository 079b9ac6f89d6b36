// Minimal leveled logging to stderr. Services log and go on; nothing here exits.
#pragma once

#include <sstream>
#include <string_view>

namespace dipaco {

enum class LogLevel { kDebug = 0, kInfo, kWarning, kError };

// Messages below this level are dropped. Default kInfo; DIPACO_LOG_LEVEL=debug|info|warning|error.
LogLevel log_threshold();
void set_log_threshold(LogLevel level);
// Writes "<time> <level> <message>\n" to stderr atomically with respect to other log calls.
void log_message(LogLevel level, std::string_view message);

namespace detail {
class LogLine {
 public:
  explicit LogLine(LogLevel level) : level_(level) {}
  ~LogLine() { log_message(level_, stream_.str()); }
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  template <typename T>
  LogLine& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace detail

}  // namespace dipaco

// DIPACO_LOG(kInfo) << "leased task " << id;
#define DIPACO_LOG(level)                                      \
  if (::dipaco::LogLevel::level < ::dipaco::log_threshold()) { \
  } else                                                       \
    ::dipaco::detail::LogLine(::dipaco::LogLevel::level)
