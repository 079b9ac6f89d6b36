// What the studio needs to attach to a running `dipaco serve`: where it listens, how to trust
// it, the operator token and which run to watch.
#pragma once

#include <cstdint>
#include <string>

namespace dipaco::studio {

struct AttachSettings {
  std::string address;  // host:port, as `dipaco serve` prints it ("listening on ...")
  bool tls = true;      // false: plaintext (serve --insecure)
  std::string ca_file;  // PEM roots that signed the server's certificate; empty = system roots
  std::string token;    // the operator token (serve --operator-token-file)
  int64_t run_id = 1;   // as `dipaco serve` prints it ("run N from ...")
  // Errors name the flags of `dipaco ctl` (--insecure, --ca-file, --token-file) instead of the
  // studio's Launch tab controls.
  bool command_line = false;
};

}  // namespace dipaco::studio
