// Client side of the transport: a channel to a coordinator with TLS (optionally presenting a
// client certificate for mTLS) or, when asked explicitly, plaintext. Used by the worker, the
// tests and the load benchmark. Add the bearer token to each call with add_bearer_token().
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "util/status.h"

namespace dipaco {

struct ChannelOptions {
  std::string address;               // host:port or unix:/path
  bool insecure = false;             // plaintext
  std::string ca_file;               // PEM roots for the server cert; empty = system roots
  std::string client_cert_file;      // PEM, for mTLS
  std::string client_key_file;       // PEM, for mTLS
  std::string server_name_override;  // TLS name to check instead of the address's host
  int max_message_bytes = 4 << 20;
};

// Creates the channel (it connects lazily); errors name unreadable files.
Result<std::shared_ptr<grpc::Channel>> make_channel(const ChannelOptions& options);

}  // namespace dipaco
