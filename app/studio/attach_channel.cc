#include "attach_channel.h"

#include "rpc/channel.h"

namespace dipaco::studio {

Result<std::shared_ptr<grpc::Channel>> attach_channel(const AttachSettings& settings) {
  if (settings.address.empty())
    return invalid_argument("no address: give the host:port that dipaco serve listens on");
  ChannelOptions options;
  options.address = settings.address;
  options.insecure = !settings.tls;
  options.ca_file = settings.ca_file;
  return make_channel(options);
}

}  // namespace dipaco::studio
