#include <cstdio>

#include "cli/commands.h"

namespace dipaco::cli {

int cmd_planned(const std::string& name, const Args& /*args*/) {
  std::fprintf(stderr,
               "dipaco %s: not available in this build yet (dipaco %s). It is on the roadmap; "
               "see the README's status section for what works today.\n",
               name.c_str(), DIPACO_VERSION);
  return kExitNotBuilt;
}

}  // namespace dipaco::cli
