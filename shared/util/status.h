// Status and Result<T>: how dipaco reports failures caused by input (files, configs, messages).
//
// Functions that can fail because of what a user gave them return Status or Result<T> with a
// message that says what is wrong and where ("corpus.jsonl:17: line has no \"text\" field").
// Programmer invariants use assert/DIPACO_CHECK instead. Nothing here throws.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace dipaco {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the input is wrong: fix the flag, file or config
  kNotFound,            // a named file, path or object does not exist
  kDataLoss,            // a file exists but is truncated or corrupt
  kFailedPrecondition,  // the input is fine but the state is not (e.g. no tokenizer yet)
  kIoError,             // the OS refused (disk full, permissions)
  kUnavailable,         // a peer or device is not reachable now; retrying may help
  kInternal,            // a bug in dipaco
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: <message>"
  std::string to_string() const;

  // Prefixes context to the message: Status(kDataLoss, "bad magic").with_context("a.tok")
  // gives "a.tok: bad magic".
  Status with_context(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status not_found(std::string m) {
  return {StatusCode::kNotFound, std::move(m)};
}
inline Status data_loss(std::string m) {
  return {StatusCode::kDataLoss, std::move(m)};
}
inline Status failed_precondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status io_error(std::string m) {
  return {StatusCode::kIoError, std::move(m)};
}
inline Status unavailable(std::string m) {
  return {StatusCode::kUnavailable, std::move(m)};
}
inline Status internal_error(std::string m) {
  return {StatusCode::kInternal, std::move(m)};
}

// Result<T> holds either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!status_.is_ok() && "Result constructed from an ok Status without a value");
  }

  bool is_ok() const { return value_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    assert(is_ok());
    return *value_;
  }
  const T& value() const& {
    assert(is_ok());
    return *value_;
  }
  T&& value() && {
    assert(is_ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace dipaco

// Returns early from the enclosing function with the status of `expr` when it is not ok.
#define DIPACO_RETURN_IF_ERROR(expr)                    \
  do {                                                  \
    ::dipaco::Status dipaco_status_ = (expr);           \
    if (!dipaco_status_.is_ok()) return dipaco_status_; \
  } while (0)

#define DIPACO_CONCAT_INNER_(a, b) a##b
#define DIPACO_CONCAT_(a, b) DIPACO_CONCAT_INNER_(a, b)
// DIPACO_ASSIGN_OR_RETURN(auto x, f()) declares x from f()'s value or returns its status.
#define DIPACO_ASSIGN_OR_RETURN(lhs, expr)                    \
  auto DIPACO_CONCAT_(dipaco_result_, __LINE__) = (expr);     \
  if (!DIPACO_CONCAT_(dipaco_result_, __LINE__).is_ok())      \
    return DIPACO_CONCAT_(dipaco_result_, __LINE__).status(); \
  lhs = std::move(DIPACO_CONCAT_(dipaco_result_, __LINE__)).value()
