#include "rpc/auth.h"

#include <string_view>

#include "util/atomic_file.h"

namespace dipaco {
namespace {

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

}  // namespace

grpc::Status authorize(const grpc::ServerContext& context, const AuthTokens& tokens, Role needed) {
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
  bool is_operator = !tokens.op.empty() && equal_constant_time(token, tokens.op);
  bool is_worker = !tokens.worker.empty() && equal_constant_time(token, tokens.worker);
  if (!is_operator && !is_worker)
    return {grpc::StatusCode::UNAUTHENTICATED,
            "the bearer token is not one this coordinator knows: check the token file against "
            "the coordinator's --worker-token-file / --operator-token-file"};
  if (needed == Role::kOperator && !is_operator)
    return {grpc::StatusCode::PERMISSION_DENIED,
            "this RPC needs the operator token; a worker token cannot call it"};
  return grpc::Status::OK;
}

Result<std::string> read_token_file(const std::string& path) {
  // read_file refuses a directory, which a stream would read as an empty file.
  auto contents = read_file(path);
  if (!contents.is_ok()) {
    return Status(contents.status().code(),
                  "cannot read the token file: " + contents.status().message());
  }
  std::string_view text = *contents;
  std::string_view line = text.substr(0, text.find('\n'));
  size_t begin = line.find_first_not_of(" \t\r");
  size_t end = line.find_last_not_of(" \t\r");
  if (begin == std::string_view::npos)
    return invalid_argument(path + ": the token file is empty (its first line is the token)");
  return std::string(line.substr(begin, end - begin + 1));
}

void add_bearer_token(grpc::ClientContext& context, const std::string& token) {
  context.AddMetadata("authorization", "Bearer " + token);
}

}  // namespace dipaco
