#include "rpc/auth.h"

#include <algorithm>
#include <chrono>

#include "rpc/refusal_log_limiter.h"
#include "util/atomic_file.h"
#include "util/log.h"
#include "util/sha256.h"

namespace dipaco {
namespace {

constexpr std::string_view kWhitespace = " \t\r\f\v";

bool equal_constant_time(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

// Compares against every entry (no early exit), so the time does not say which one matched.
bool matches_any_constant_time(std::string_view token, const std::vector<std::string>& listed) {
  bool matched = false;
  for (const std::string& candidate : listed)
    matched |= !candidate.empty() && equal_constant_time(token, candidate);
  return matched;
}

// "Register" from "virtual grpc::Status dipaco::CoordinatorService::Register(grpc::...)".
std::string_view rpc_name(std::string_view function) {
  function = function.substr(0, function.find('('));
  size_t scope = function.rfind("::");
  return scope == std::string_view::npos ? function : function.substr(scope + 2);
}

// A WARNING per refusal, at most once a minute per (peer address, role), so that the operator
// sees who still holds a rotated-out token; never the token, only its fingerprint.
void log_refusal(const grpc::ServerContext& context, Role needed, std::string_view token,
                 const grpc::Status& refusal, std::string_view rpc) {
  const std::string peer = context.peer();
  const char* role = needed == Role::kOperator ? "operator" : "worker";
  const char* article = needed == Role::kOperator ? "an " : "a ";
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  if (!token_refusal_log_limiter().should_log(peer_without_port(peer) + " " + role, now_ms)) return;
  std::string fingerprint =
      token.empty() ? std::string("none") : "sha256 " + token_fingerprint(token);
  DIPACO_LOG(kWarning) << "refused " << article << role << " call " << rpc << " from " << peer
                       << " (token " << fingerprint << "): " << refusal.error_message()
                       << " (logged at most once a minute per peer and role)";
}

grpc::Status check_bearer(const grpc::ServerContext& context, const AuthTokens& tokens, Role needed,
                          std::string_view* token_seen) {
  const auto& metadata = context.client_metadata();
  auto found = metadata.find("authorization");
  if (found == metadata.end())
    return {grpc::StatusCode::UNAUTHENTICATED,
            "no 'authorization: Bearer <token>' metadata: configure the worker's token_file or "
            "pass the operator token"};
  std::string_view value(found->second.data(), found->second.size());
  constexpr std::string_view kPrefix = "Bearer ";
  if (value.substr(0, kPrefix.size()) != kPrefix)
    return {grpc::StatusCode::UNAUTHENTICATED,
            "authorization metadata is not of the form 'Bearer <token>'"};
  std::string_view token = value.substr(kPrefix.size());
  *token_seen = token;
  const bool is_operator = matches_any_constant_time(token, tokens.op);
  const bool is_worker = matches_any_constant_time(token, tokens.worker);
  if (!is_operator && !is_worker)
    return {grpc::StatusCode::UNAUTHENTICATED,
            "the bearer token is not one this coordinator knows: check the token file against "
            "the coordinator's --worker-token-file / --operator-token-file"};
  if (needed == Role::kOperator && !is_operator)
    return {grpc::StatusCode::PERMISSION_DENIED,
            "this RPC needs the operator token; a worker token cannot call it"};
  return grpc::Status::OK;
}

}  // namespace

grpc::Status authorize(const grpc::ServerContext& context, const AuthTokens& tokens, Role needed,
                       std::source_location caller) {
  std::string_view token;
  grpc::Status status = check_bearer(context, tokens, needed, &token);
  if (!status.ok()) log_refusal(context, needed, token, status, rpc_name(caller.function_name()));
  return status;
}

Status check_auth_tokens(const AuthTokens& tokens) {
  if (tokens.worker.empty() || tokens.op.empty())
    return invalid_argument(
        "both a worker token and an operator token are required (--worker-token-file, "
        "--operator-token-file)");
  for (const auto* listed : {&tokens.worker, &tokens.op}) {
    for (const std::string& token : *listed) {
      if (token.empty()) return invalid_argument("an empty token cannot be accepted");
    }
  }
  for (const std::string& token : tokens.worker) {
    if (std::find(tokens.op.begin(), tokens.op.end(), token) != tokens.op.end())
      return invalid_argument(
          "a token is listed for both the worker and the operator role; the worker and operator "
          "tokens must differ");
  }
  return Status::ok();
}

Result<std::vector<std::string>> parse_token_list(std::string_view text) {
  constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
  if (text.substr(0, kByteOrderMark.size()) == kByteOrderMark)
    text.remove_prefix(kByteOrderMark.size());
  std::vector<std::string> tokens;
  for (int line_number = 1; !text.empty(); ++line_number) {
    size_t end_of_line = text.find('\n');
    std::string_view line = text.substr(0, end_of_line);
    text =
        end_of_line == std::string_view::npos ? std::string_view() : text.substr(end_of_line + 1);
    size_t begin = line.find_first_not_of(kWhitespace);
    if (begin == std::string_view::npos || line[begin] == '#') continue;
    line.remove_prefix(begin);
    // An inline comment: whitespace, then '#' to the end of the line.
    for (size_t hash = line.find('#'); hash != std::string_view::npos;
         hash = line.find('#', hash + 1)) {
      if (kWhitespace.find(line[hash - 1]) != std::string_view::npos) {
        line = line.substr(0, hash);
        break;
      }
    }
    line = line.substr(0, line.find_last_not_of(kWhitespace) + 1);
    if (line.find_first_of(kWhitespace) != std::string_view::npos)
      return invalid_argument("line " + std::to_string(line_number) +
                              ": a token cannot contain spaces (a comment starts with "
                              "whitespace and '#')");
    tokens.emplace_back(line);
  }
  return tokens;
}

std::string token_fingerprint(std::string_view token) {
  return to_hex(sha256(token)).substr(0, 8);
}

std::string token_fingerprints(const std::vector<std::string>& tokens) {
  std::string listed;
  for (const std::string& token : tokens) {
    if (!listed.empty()) listed += ' ';
    listed += token_fingerprint(token);
  }
  return listed;
}

Result<std::vector<std::string>> read_token_list_file(const std::string& path) {
  // read_file refuses a directory, which a stream would read as an empty file.
  auto contents = read_file(path);
  if (!contents.is_ok()) {
    return Status(contents.status().code(),
                  "cannot read the token file: " + contents.status().message());
  }
  auto tokens = parse_token_list(*contents);
  if (!tokens.is_ok()) return invalid_argument(path + ": " + tokens.status().message());
  if (tokens->empty())
    return invalid_argument(path +
                            ": the token file is empty (no token: one per line, blank lines and "
                            "'#' comments are skipped)");
  return tokens;
}

Result<std::string> read_token_file(const std::string& path) {
  DIPACO_ASSIGN_OR_RETURN(std::vector<std::string> tokens, read_token_list_file(path));
  return std::move(tokens.front());
}

Result<AuthTokens> read_auth_tokens(const std::string& worker_token_file,
                                    const std::string& operator_token_file) {
  AuthTokens tokens;
  DIPACO_ASSIGN_OR_RETURN(tokens.worker, read_token_list_file(worker_token_file));
  DIPACO_ASSIGN_OR_RETURN(tokens.op, read_token_list_file(operator_token_file));
  if (Status checked = check_auth_tokens(tokens); !checked.is_ok())
    return invalid_argument(worker_token_file + " and " + operator_token_file + ": " +
                            checked.message());
  return tokens;
}

void add_bearer_token(grpc::ClientContext& context, const std::string& token) {
  context.AddMetadata("authorization", "Bearer " + token);
}

}  // namespace dipaco
