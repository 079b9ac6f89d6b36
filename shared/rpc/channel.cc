#include "rpc/channel.h"

#include "util/atomic_file.h"

namespace dipaco {

Result<std::shared_ptr<grpc::Channel>> make_channel(const ChannelOptions& options) {
  if (options.address.empty()) return invalid_argument("coordinator address: empty");
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.insecure) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    if (!options.ca_file.empty()) {
      DIPACO_ASSIGN_OR_RETURN(ssl.pem_root_certs, read_file(options.ca_file));
    }
    if (options.client_cert_file.empty() != options.client_key_file.empty())
      return invalid_argument("mTLS needs both a client certificate and its key");
    if (!options.client_cert_file.empty()) {
      DIPACO_ASSIGN_OR_RETURN(ssl.pem_cert_chain, read_file(options.client_cert_file));
      DIPACO_ASSIGN_OR_RETURN(ssl.pem_private_key, read_file(options.client_key_file));
    }
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(options.max_message_bytes);
  arguments.SetMaxSendMessageSize(options.max_message_bytes);
  // Reconnect quickly after a coordinator restart (gRPC's default waits up to 120 s); the
  // worker's own backoff with jitter spreads the retries. GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is
  // left alone: it is also the connect timeout (20 s), which slow handshakes need.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  if (!options.server_name_override.empty())
    arguments.SetSslTargetNameOverride(options.server_name_override);
  return grpc::CreateCustomChannel(options.address, credentials, arguments);
}

}  // namespace dipaco
