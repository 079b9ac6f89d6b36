// gRPC addresses as dipaco spells them: splitting HOST:PORT (the listen side, rpc/server.cc) and
// checking an address a client dials (the worker's [coordinator] address) before anything dials
// it, so that a typo fails the config check instead of being retried forever.
#pragma once

#include <optional>
#include <string>

#include "util/status.h"

namespace dipaco {

struct HostPort {
  std::string host;  // without IPv6 brackets; empty for ":port" (every interface, listen side)
  std::string port;  // as written, not checked here
};

// "host:port", "[v6]:port" or ":port"; nullopt when the shape is wrong (no ':', an IPv6 host
// without brackets, text after ']' other than ":port").
std::optional<HostPort> split_host_port(const std::string& address);

// What a valid dial address looks like, for error messages.
inline constexpr const char* kDialAddressForms =
    "host:port (coordinator.example:7443, 10.0.0.1:7443), [ipv6]:port ([::1]:7443), "
    "dns:///host:port, unix:/path/to/socket or unix:///path/to/socket";

// Checks an address make_channel (rpc/channel.h) hands to gRPC unchanged. Accepted:
//   host:port                        host a DNS name or IPv4 literal, port 1..65535
//   [ipv6]:port                      an IPv6 literal in brackets, optionally with %zone
//   dns:///host[:port]               no port: gRPC dials 443
//   dns://server[:port]/host[:port]  a DNS server to ask
//   ipv4:a.b.c.d:port[,...]          gRPC's literal lists (no resolution)
//   ipv6:[addr]:port[,...]
//   unix:path, unix:///absolute/path a Unix socket
//   unix-abstract:name               a Linux abstract socket
// A URL (http://host:port) is refused with "drop http://". The error says what is wrong and
// lists the accepted forms. Names are not resolved here.
Status check_dial_address(const std::string& address);

}  // namespace dipaco
