#include "rpc/address.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <string_view>

namespace dipaco {
namespace {

bool is_host_name(std::string_view host) {
  if (host.empty() || host.front() == '-' || host.front() == '.') return false;
  for (char c : host) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '.' && c != '_')
      return false;
  }
  return true;
}

// An IPv6 literal, optionally with a zone ("fe80::1%eth0").
bool is_ipv6_literal(const std::string& host) {
  const std::string address = host.substr(0, host.find('%'));
  const std::string zone = address.size() < host.size() ? host.substr(address.size() + 1) : "x";
  in6_addr parsed{};
  return inet_pton(AF_INET6, address.c_str(), &parsed) == 1 && is_host_name(zone);
}

bool is_port(std::string_view port) {
  int value = 0;
  const char* end = port.data() + port.size();
  auto [ptr, ec] = std::from_chars(port.data(), end, value);
  return !port.empty() && std::isdigit(static_cast<unsigned char>(port.front())) != 0 &&
         ec == std::errc() && ptr == end && value >= 1 && value <= 65535;
}

Status bad_dial_address(const std::string& address, const std::string& why) {
  return invalid_argument("'" + address + "' is not an address to dial: " + why + "; use " +
                          kDialAddressForms);
}

}  // namespace

std::optional<HostPort> split_host_port(const std::string& address) {
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':')
      return std::nullopt;
    return HostPort{address.substr(1, close - 1), address.substr(close + 2)};
  }
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  std::string host = address.substr(0, colon);
  if (host.find(':') != std::string::npos) return std::nullopt;  // IPv6 needs brackets
  return HostPort{host, address.substr(colon + 1)};
}

Status check_dial_address(const std::string& address) {
  if (address.empty()) return bad_dial_address(address, "it is empty");
  const std::string_view text = address;
  if (text.starts_with("unix:")) {
    std::string_view path = text.substr(5);
    if (path.starts_with("//")) {
      if (!path.starts_with("///") || path.size() == 3)
        return bad_dial_address(address, "unix:// must be followed by an absolute path");
    } else if (path.empty()) {
      return bad_dial_address(address, "a Unix socket needs a path");
    }
    return Status::ok();
  }
  std::string host_port = address;
  if (text.starts_with("dns:")) {
    if (!text.starts_with("dns:///"))
      return bad_dial_address(address, "dns: must be followed by ///host:port");
    host_port = address.substr(7);
  }
  const bool bracketed = !host_port.empty() && host_port.front() == '[';
  auto parts = split_host_port(host_port);
  if (!parts) {
    if (bracketed) return bad_dial_address(address, "an IPv6 address needs ]:port after it");
    if (host_port.find(':') == std::string::npos)
      return bad_dial_address(address, "it has no :port");
    return bad_dial_address(address, "an IPv6 address needs brackets, or the name has a ':' in it");
  }
  if (parts->host.empty()) return bad_dial_address(address, "it has no host before the ':'");
  if (bracketed ? !is_ipv6_literal(parts->host) : !is_host_name(parts->host)) {
    return bad_dial_address(address,
                            "'" + parts->host + "' is not " +
                                (bracketed ? "an IPv6 address" : "a host name or IPv4 address"));
  }
  if (!is_port(parts->port))
    return bad_dial_address(address, "the port '" + parts->port + "' is not a number in 1..65535");
  return Status::ok();
}

}  // namespace dipaco
