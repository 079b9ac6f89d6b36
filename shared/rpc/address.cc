#include "rpc/address.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <string_view>
#include <utility>

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
  if (text.starts_with("unix-abstract:")) {
    if (text.size() == 14) return bad_dial_address(address, "unix-abstract: needs a name");
    return Status::ok();
  }
  // gRPC's literal address lists: ipv4:10.0.0.1:7443,10.0.0.2:7443 and ipv6:[::1]:7443.
  for (const auto& [scheme, ipv6] :
       {std::pair{std::string_view("ipv4:"), false}, std::pair{std::string_view("ipv6:"), true}}) {
    if (!text.starts_with(scheme)) continue;
    std::string_view list = text.substr(scheme.size());
    if (list.empty()) return bad_dial_address(address, std::string(scheme) + " needs an address");
    while (true) {
      const size_t comma = list.find(',');
      std::string entry(list.substr(0, comma));
      auto parts = split_host_port(entry);
      in_addr ipv4_parsed{};
      const bool literal =
          parts && (ipv6 ? entry.front() == '[' && is_ipv6_literal(parts->host)
                         : inet_pton(AF_INET, parts->host.c_str(), &ipv4_parsed) == 1);
      if (!literal || !is_port(parts->port)) {
        return bad_dial_address(
            address,
            "'" + entry + "' is not " + (ipv6 ? "[an IPv6 address]:port" : "an IPv4 address:port"));
      }
      if (comma == std::string_view::npos) return Status::ok();
      list = list.substr(comma + 1);
    }
  }
  // A URL's scheme (http://, https://, grpc://): gRPC would take it for a host name.
  const size_t scheme_end = text.find("://");
  if (scheme_end != std::string_view::npos && scheme_end > 0 && !text.starts_with("dns:") &&
      text.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-") ==
          scheme_end) {
    return bad_dial_address(address, "drop " + address.substr(0, scheme_end + 3) +
                                         ": use host:port or dns:///host:port");
  }
  std::string host_port = address;
  bool default_port = false;  // dns: targets may leave the port out (gRPC dials 443)
  if (text.starts_with("dns:")) {
    // dns:///host[:port], or dns://authority/host[:port] with the DNS server to ask.
    std::string_view rest = text.substr(4);
    const size_t slash = rest.starts_with("//") ? rest.find('/', 2) : std::string_view::npos;
    if (slash == std::string_view::npos) {
      return bad_dial_address(address,
                              "dns: must be followed by ///host:port (or //dns-server/host:port)");
    }
    const std::string authority(rest.substr(2, slash - 2));
    if (!authority.empty()) {
      const bool bracketed = authority.front() == '[';
      auto parts = split_host_port(authority);
      const std::string host = parts ? parts->host : authority;
      const bool host_ok = bracketed ? parts && is_ipv6_literal(host) : is_host_name(host);
      if (!host_ok || (parts && !is_port(parts->port)))
        return bad_dial_address(address, "the DNS server '" + authority + "' is not host[:port]");
    }
    host_port = std::string(rest.substr(slash + 1));
    default_port = true;
  }
  const bool bracketed = !host_port.empty() && host_port.front() == '[';
  if (default_port && !host_port.empty()) {
    if (bracketed && host_port.back() == ']') {
      if (!is_ipv6_literal(host_port.substr(1, host_port.size() - 2)))
        return bad_dial_address(address, "'" + host_port + "' is not an IPv6 address");
      return Status::ok();
    }
    if (!bracketed && host_port.find(':') == std::string::npos) {
      if (!is_host_name(host_port))
        return bad_dial_address(address, "'" + host_port + "' is not a host name or IPv4 address");
      return Status::ok();
    }
  }
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
