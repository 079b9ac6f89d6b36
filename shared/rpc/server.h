// RpcServer: a gRPC server around one Coordinator (`dipaco serve`, tests, the load benchmark).
//
// Transport. TLS with a server certificate by default; with client_ca_file, clients must present
// a certificate signed by it (mTLS). Plaintext only when `insecure` is set explicitly (meant for
// loopback and Unix sockets, "unix:/path"). Tokens: both roles must be configured
// (check_auth_tokens); set_tokens replaces them while the server runs.
//
// Background thread. Every `poll_ms` it calls Coordinator::tick() (lease deadlines, partial
// aggregation) and, for every unfinished run, hands each pending aggregation decision to the
// Aggregator; errors are logged and the decision is retried on the next poll (decisions persist
// across restarts). Without an aggregator nothing aggregates (an embedding program may call
// pending_aggregations itself).
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "rpc/service.h"

namespace dipaco {

struct ServerOptions {
  std::string address = "127.0.0.1:0";  // host:port (port 0 = any free one) or unix:/path
  bool insecure = false;                // plaintext; must be asked for
  std::string tls_cert_file;            // PEM server certificate chain
  std::string tls_key_file;             // PEM private key
  std::string client_ca_file;           // PEM; set = require client certificates (mTLS)
  ServiceOptions service;
  Aggregator aggregator;
  int64_t poll_ms = 100;
  int max_message_bytes = 4 << 20;  // gRPC's limit; chunks are <= 1 MiB, this leaves room
};

// True for addresses only this host can reach: a Unix socket ("unix:/path", "unix-abstract:"),
// or HOST:PORT with HOST in 127.0.0.0/8, ::1 ("[::1]:PORT"), ::ffff:127.x.x.x or "localhost".
bool is_loopback_address(const std::string& address);

// Checks a listen address before anything is created or bound: "unix:/path", or HOST:PORT
// with PORT in 0..65535 and HOST an IP literal ("[v6]" for IPv6), empty / 0.0.0.0 / [::] for
// every interface, or a name that resolves. With `insecure` the address must be loopback
// (is_loopback_address): plaintext carries the bearer tokens and the weights. Errors name
// --address / --insecure, as `dipaco serve` spells them.
Status check_listen_address(const std::string& address, bool insecure);

class RpcServer {
 public:
  // Starts listening; errors say which file or address to fix.
  static Result<std::unique_ptr<RpcServer>> start(Coordinator& coordinator, ServerOptions options);
  ~RpcServer();  // shutdown()
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // The bound TCP port (0 for a Unix socket).
  int port() const { return port_; }
  // "127.0.0.1:<port>" or the unix address: what clients dial.
  std::string target() const;
  // The address listened on with the bound port, host as given: "0.0.0.0:43121" (every
  // interface), "[::1]:7443", or the unix address. What a log line should say.
  std::string listening_address() const;
  // True when the host is a wildcard (empty, 0.0.0.0, [::]): every interface.
  bool listens_on_every_interface() const;
  // Replaces the accepted tokens (dipaco serve's SIGHUP) without touching a connection; refused
  // (the old ones stay) when check_auth_tokens refuses them.
  Status set_tokens(AuthTokens tokens);
  // Stops accepting calls, ends streams, stops the background thread. Idempotent.
  void shutdown();
  // Runs one background pass now (tests).
  void poll_once();

 private:
  RpcServer(Coordinator& coordinator, ServerOptions options);
  void loop();

  Coordinator& coordinator_;
  ServerOptions options_;
  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::mutex poll_mutex_;  // one pass at a time (background thread and poll_once)
  std::thread thread_;
};

}  // namespace dipaco
