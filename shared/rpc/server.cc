#include "rpc/server.h"

#include "util/atomic_file.h"
#include "util/log.h"

namespace dipaco {

RpcServer::RpcServer(Coordinator& coordinator, ServerOptions options)
    : coordinator_(coordinator), options_(std::move(options)) {}

Result<std::unique_ptr<RpcServer>> RpcServer::start(Coordinator& coordinator,
                                                    ServerOptions options) {
  if (options.service.tokens.worker.empty() || options.service.tokens.op.empty())
    return invalid_argument(
        "both a worker token and an operator token are required (--worker-token-file, "
        "--operator-token-file)");
  if (options.service.tokens.worker == options.service.tokens.op)
    return invalid_argument("the worker and operator tokens must differ");
  if (!options.service.hooks.task_config)
    return invalid_argument("RunHooks::task_config is required");
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
  builder.AddListeningPort(server->options_.address, credentials, &server->port_);
  builder.RegisterService(server->service_.get());
  builder.SetMaxReceiveMessageSize(server->options_.max_message_bytes);
  builder.SetMaxSendMessageSize(server->options_.max_message_bytes);
  server->server_ = builder.BuildAndStart();
  if (!server->server_)
    return unavailable("cannot listen on " + server->options_.address +
                       ": the address is in use, malformed, or the TLS files are invalid");
  server->thread_ = std::thread([s = server.get()] { s->loop(); });
  return server;
}

RpcServer::~RpcServer() {
  shutdown();
}

std::string RpcServer::target() const {
  if (options_.address.rfind("unix:", 0) == 0) return options_.address;
  std::string host = options_.address.substr(0, options_.address.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
  return host + ":" + std::to_string(port_);
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
