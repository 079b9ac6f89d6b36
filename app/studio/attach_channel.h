// The channel to the `dipaco serve` that AttachSettings describe: TLS with the CA file (system
// roots when none), or plaintext for serve --insecure. Shared by the studio's attach and
// `dipaco ctl`. It connects lazily: an unreachable server shows at the first call.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>

#include "attach_settings.h"
#include "util/status.h"

namespace dipaco::studio {

// Errors name an unreadable CA file or a missing address.
Result<std::shared_ptr<grpc::Channel>> attach_channel(const AttachSettings& settings);

}  // namespace dipaco::studio
