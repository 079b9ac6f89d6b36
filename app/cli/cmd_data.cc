#include "cli/commands.h"

namespace dipaco::cli {

int cmd_data(const Args& args) {
  return cmd_planned("data", args);
}

}  // namespace dipaco::cli
