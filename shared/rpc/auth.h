// Bearer-token authorization of RPCs by role.
//
// Every call carries "authorization: Bearer <token>" metadata. Two roles: a worker token may call
// the worker RPCs (Register ... ReleaseLease); an operator token may call everything (operator
// RPCs: CreateRun, Pause, Resume, DrainWorker, PreemptTask, SetInnerSteps, WatchRun). A missing
// or unknown token is UNAUTHENTICATED; a worker token on an operator RPC is PERMISSION_DENIED.
// Empty token lists are refused at start-up (RpcServer), so there is no "auth off" switch.
//
// Each role may have several tokens, so that a token can be rotated without a stop: the
// coordinator's token file lists the old and the new one (one per line) while the clients move
// over. Tokens are compared in constant time, against every listed token of both roles whatever
// matched, so neither the time nor the result says which one it was.
#pragma once

#include <grpcpp/grpcpp.h>

#include <source_location>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace dipaco {

enum class Role { kWorker, kOperator };

// The tokens a coordinator accepts: any of `worker` for the worker role, any of `op` for every
// RPC.
struct AuthTokens {
  std::vector<std::string> worker;
  std::vector<std::string> op;  // operator

  AuthTokens() = default;
  // One token per role (for several, set the lists).
  AuthTokens(std::string worker_token, std::string operator_token)
      : worker{std::move(worker_token)}, op{std::move(operator_token)} {}
};

// OK, UNAUTHENTICATED or PERMISSION_DENIED; messages say what to check, never echo tokens. A
// refusal is logged as a WARNING naming the peer, the role and the RPC (the calling handler's
// name), at most once a minute per peer address and role (refusal_log_limiter.h).
grpc::Status authorize(const grpc::ServerContext& context, const AuthTokens& tokens, Role needed,
                       std::source_location caller = std::source_location::current());

// What a coordinator can serve with: at least one token per role, none empty, and no token in
// both roles (a worker would hold operator rights).
Status check_auth_tokens(const AuthTokens& tokens);

// The tokens of a token file's text, in file order: one per line; a UTF-8 byte order mark at the
// start is skipped; surrounding whitespace (CR included) is trimmed; blank lines and lines whose
// first non-blank character is '#' are skipped; an inline comment (whitespace, then '#' to the
// end of the line) is stripped. A token that still holds whitespace is an error naming the line
// ("line 2: a token cannot contain spaces ...").
Result<std::vector<std::string>> parse_token_list(std::string_view text);

// What operators compare between the coordinator and a client without showing the token: the
// first 8 hex digits of its SHA-256.
std::string token_fingerprint(std::string_view token);
// The fingerprints of a list, space-separated, in order.
std::string token_fingerprints(const std::vector<std::string>& tokens);

// Reads a token file's list (parse_token_list). Errors name the file (and the line); a file without
// a token is an error.
Result<std::vector<std::string>> read_token_list_file(const std::string& path);

// A client's token: the first token of the file (read_token_list_file). Errors name the file.
Result<std::string> read_token_file(const std::string& path);

// A coordinator's tokens from its two token files (dipaco serve --worker-token-file,
// --operator-token-file), checked with check_auth_tokens; errors name the file.
Result<AuthTokens> read_auth_tokens(const std::string& worker_token_file,
                                    const std::string& operator_token_file);

// Adds the bearer token to a client call.
void add_bearer_token(grpc::ClientContext& context, const std::string& token);

}  // namespace dipaco
