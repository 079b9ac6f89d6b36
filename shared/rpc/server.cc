#include "rpc/server.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <cctype>
#include <charconv>
#include <optional>

#include "rpc/address.h"
#include "util/atomic_file.h"
#include "util/log.h"

namespace dipaco {
namespace {

bool is_unix_address(const std::string& address) {
  return address.rfind("unix:", 0) == 0 || address.rfind("unix-abstract:", 0) == 0;
}

bool is_wildcard_host(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::";
}

bool is_loopback_host(const std::string& host) {
  std::string lower;
  for (char c : host)
    lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (lower == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  return false;
}

}  // namespace

bool is_loopback_address(const std::string& address) {
  if (is_unix_address(address)) return true;
  auto parts = split_host_port(address);
  return parts && is_loopback_host(parts->host);
}

Status check_listen_address(const std::string& address, bool insecure) {
  const std::string flag = "--address " + address + ": ";
  if (is_unix_address(address)) {
    if (address.substr(address.find(':') + 1).empty())
      return invalid_argument(flag + "a Unix socket needs a path (unix:/path/to/socket)");
    return Status::ok();
  }
  auto parts = split_host_port(address);
  if (!parts)
    return invalid_argument(flag +
                            "expected HOST:PORT (127.0.0.1:7443, [::1]:7443, 0.0.0.0:7443) or "
                            "unix:/path");
  int port = -1;
  const char* end = parts->port.data() + parts->port.size();
  auto [ptr, ec] = std::from_chars(parts->port.data(), end, port);
  if (parts->port.empty() || ec != std::errc() || ptr != end || port < 0 || port > 65535)
    return invalid_argument(flag + "the port '" + parts->port +
                            "' is not a number in 0..65535 (0 = any free port)");
  in6_addr ip{};
  const bool literal = inet_pton(AF_INET, parts->host.c_str(), &ip) == 1 ||
                       inet_pton(AF_INET6, parts->host.c_str(), &ip) == 1;
  if (!literal && !parts->host.empty()) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int rc = getaddrinfo(parts->host.c_str(), nullptr, &hints, &found);
    if (found != nullptr) freeaddrinfo(found);
    if (rc != 0)
      return invalid_argument(flag + "cannot resolve the host '" + parts->host +
                              "': " + gai_strerror(rc));
  }
  if (insecure && !is_loopback_host(parts->host))
    return invalid_argument(
        "--insecure (plaintext: bearer tokens and weights readable on the network) is only "
        "allowed on a loopback address (127.0.0.0/8, [::1], localhost) or a Unix socket "
        "(unix:/path), and --address " +
        address + " is " +
        (is_wildcard_host(parts->host) ? "every interface" : "reachable from other hosts") +
        ": serve TLS there (--tls-cert, --tls-key), or listen on 127.0.0.1");
  return Status::ok();
}

RpcServer::RpcServer(Coordinator& coordinator, ServerOptions options)
    : coordinator_(coordinator), options_(std::move(options)) {}

Result<std::unique_ptr<RpcServer>> RpcServer::start(Coordinator& coordinator,
                                                    ServerOptions options) {
  DIPACO_RETURN_IF_ERROR(check_auth_tokens(options.service.tokens));
  if (!options.service.hooks.task_config)
    return invalid_argument("RunHooks::task_config is required");
  DIPACO_RETURN_IF_ERROR(check_listen_address(options.address, options.insecure));
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (options.insecure) {
    credentials = grpc::InsecureServerCredentials();
  } else {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty())
      return invalid_argument(
          "TLS needs a certificate and a key (--tls-cert, --tls-key); plaintext only with "
          "--insecure");
    grpc::SslServerCredentialsOptions ssl(
        options.client_ca_file.empty()
            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    DIPACO_ASSIGN_OR_RETURN(std::string cert, read_file(options.tls_cert_file));
    DIPACO_ASSIGN_OR_RETURN(std::string key, read_file(options.tls_key_file));
    ssl.pem_key_cert_pairs.push_back({key, cert});
    if (!options.client_ca_file.empty()) {
      DIPACO_ASSIGN_OR_RETURN(ssl.pem_root_certs, read_file(options.client_ca_file));
    }
    credentials = grpc::SslServerCredentials(ssl);
  }
  std::unique_ptr<RpcServer> server(new RpcServer(coordinator, std::move(options)));
  server->service_ = std::make_unique<CoordinatorService>(coordinator, server->options_.service);
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second coordinator on the same port would then start,
  // and the kernel would split the fleet's connections between the two. One port, one server.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(server->options_.address, credentials, &server->port_);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(server->options_.max_message_bytes);
  builder.SetMaxSendMessageSize(server->options_.max_message_bytes);
  server->server_ = builder.BuildAndStart();
  if (!server->server_)
    return unavailable("cannot listen on " + server->options_.address +
                       (options.insecure
                            ? ": the port is in use, or the address is not one of this host's"
                            : ": the port is in use, the address is not one of this host's, or "
                              "the TLS certificate and key do not match"));
  server->thread_ = std::thread([s = server.get()] { s->loop(); });
  return server;
}

RpcServer::~RpcServer() {
  shutdown();
}

std::string RpcServer::target() const {
  if (is_unix_address(options_.address)) return options_.address;
  if (listens_on_every_interface()) return "127.0.0.1:" + std::to_string(port_);
  return listening_address();
}

std::string RpcServer::listening_address() const {
  if (is_unix_address(options_.address)) return options_.address;
  return options_.address.substr(0, options_.address.rfind(':')) + ":" + std::to_string(port_);
}

bool RpcServer::listens_on_every_interface() const {
  if (is_unix_address(options_.address)) return false;
  auto parts = split_host_port(options_.address);
  return parts && is_wildcard_host(parts->host);
}

Status RpcServer::set_tokens(AuthTokens tokens) {
  DIPACO_RETURN_IF_ERROR(check_auth_tokens(tokens));
  service_->set_tokens(std::move(tokens));
  return Status::ok();
}

void RpcServer::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (service_) service_->stop_watches();
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
    server_.reset();
  }
}

void RpcServer::poll_once() {
  std::lock_guard poll(poll_mutex_);
  Status ticked = coordinator_.tick();
  if (!ticked.is_ok()) {
    DIPACO_LOG(kWarning) << "coordinator tick: " << ticked.message();
  }
  if (!options_.aggregator) return;
  auto runs = coordinator_.active_runs();
  if (!runs.is_ok()) {
    DIPACO_LOG(kWarning) << "listing runs: " << runs.status().message();
    return;
  }
  for (int64_t run : *runs) {
    auto decisions = coordinator_.pending_aggregations(run);
    if (!decisions.is_ok()) {
      DIPACO_LOG(kWarning) << "run " << run
                           << " pending aggregations: " << decisions.status().message();
      continue;
    }
    if (decisions->empty()) continue;
    auto config = coordinator_.run_config(run);
    if (!config.is_ok()) continue;
    for (const AggregationDecision& decision : *decisions) {
      Status done = options_.aggregator(coordinator_, decision, *config);
      if (!done.is_ok()) {
        DIPACO_LOG(kWarning) << "run " << run << " module " << decision.module_id << " outer step "
                             << decision.outer_step
                             << " aggregation failed (retried): " << done.message();
      }
    }
  }
}

void RpcServer::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    poll_once();
    lock.lock();
    wake_.wait_for(lock, std::chrono::milliseconds(options_.poll_ms), [this] { return stopping_; });
  }
}

}  // namespace dipaco
