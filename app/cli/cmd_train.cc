#include "cli/commands.h"

namespace dipaco::cli {

int cmd_train(const Args& args) {
  return cmd_planned("train", args);
}

}  // namespace dipaco::cli
