// Bearer-token authorization of RPCs by role.
//
// Every call carries "authorization: Bearer <token>" metadata. Two roles: a worker token may call
// the worker RPCs (Register ... ReleaseLease); the operator token may call everything (operator
// RPCs: CreateRun, Pause, Resume, DrainWorker, PreemptTask, SetInnerSteps, WatchRun). A missing
// or unknown token is UNAUTHENTICATED; a worker token on an operator RPC is PERMISSION_DENIED.
// Tokens are compared in constant time. Empty configured tokens are refused at start-up
// (RpcServer), so there is no "auth off" switch.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "util/status.h"

namespace dipaco {

enum class Role { kWorker, kOperator };

struct AuthTokens {
  std::string worker;
  std::string op;  // operator
};

// OK, UNAUTHENTICATED or PERMISSION_DENIED; messages say what to check, never echo tokens.
grpc::Status authorize(const grpc::ServerContext& context, const AuthTokens& tokens, Role needed);

// Reads a token file: the first line, surrounding whitespace removed. Errors name the file; an
// empty token is an error.
Result<std::string> read_token_file(const std::string& path);

// Adds the bearer token to a client call.
void add_bearer_token(grpc::ClientContext& context, const std::string& token);

}  // namespace dipaco
