#include "attach_errors.h"

#include <algorithm>
#include <cctype>

namespace dipaco::studio {

namespace {

bool mentions_tls(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* word : {"ssl", "tls", "handshake", "certificate"}) {
    if (text.find(word) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::string explain_attach_failure(const grpc::Status& status, const AttachSettings& settings) {
  const std::string& at = settings.address;
  const std::string said = status.error_message().empty()
                               ? std::string()
                               : " (server said: " + status.error_message() + ")";
  switch (status.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED:
      return "the coordinator at " + at +
             " refused the token: use the operator token, the file given to dipaco serve "
             "--operator-token-file" +
             (settings.command_line ? std::string(" (pass it with --token-file)") : std::string()) +
             said;
    case grpc::StatusCode::PERMISSION_DENIED:
      return "the coordinator at " + at +
             " took the token for a worker's: watching and operator actions need the operator "
             "token (dipaco serve --operator-token-file)" +
             said;
    case grpc::StatusCode::NOT_FOUND:
      return "the coordinator at " + at + " has no run " + std::to_string(settings.run_id) +
             ": check the run id (dipaco serve prints \"run N from ...\")" + said;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "the coordinator at " + at + " refused: " + status.error_message();
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::UNKNOWN:
      if (mentions_tls(status.error_message())) {
        return settings.tls
                   ? "TLS with the coordinator at " + at +
                         " failed: check the CA file (it must be the one that signed the "
                         "server's certificate" +
                         (settings.ca_file.empty() ? std::string(", none given: system roots")
                                                   : ", given: " + settings.ca_file) +
                         "), that the certificate names this host, and that the server "
                         "uses TLS (not serve --insecure)" +
                         said
                   : "the coordinator at " + at + " speaks TLS: " +
                         (settings.command_line ? "drop --insecure and give --ca-file"
                                                : "tick TLS and give its CA file") +
                         said;
      }
      return "no coordinator at " + at +
             ": is dipaco serve running, is the port open (firewall), is the address right" +
             (settings.tls ? std::string(", does the server use TLS (") +
                                 (settings.command_line ? "pass --insecure" : "untick TLS") +
                                 " for serve --insecure)"
                           : std::string(", does the server expect TLS (") +
                                 (settings.command_line ? "drop --insecure" : "tick TLS") + ")") +
             said;
    default:
      return "the coordinator at " + at + " failed: " + status.error_message() + " (gRPC code " +
             std::to_string(static_cast<int>(status.error_code())) + ")";
  }
}

}  // namespace dipaco::studio
