// A failed call to `dipaco serve`, said plainly with what to check: no coordinator at the
// address (is it running, is the port open), the token, the TLS setup (the CA file, or TLS on
// one side only), the run id. The server's own words follow after "server said:".
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>

#include "attach_settings.h"

namespace dipaco::studio {

std::string explain_attach_failure(const grpc::Status& status, const AttachSettings& settings);

}  // namespace dipaco::studio
