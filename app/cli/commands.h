// The dipaco subcommands. Each takes its arguments (after the subcommand name) and returns the
// process exit code: 0 success, 1 the work failed, 2 bad usage.
#pragma once

#include <string>
#include <vector>

namespace dipaco::cli {

using Args = std::vector<std::string>;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// A subcommand of the design that this build does not have yet.

int cmd_ctl(const Args& args);
int cmd_data(const Args& args);
int cmd_doctor(const Args& args);
int cmd_eval(const Args& args);
int cmd_export(const Args& args);
int cmd_generate(const Args& args);
int cmd_run(const Args& args);
int cmd_train(const Args& args);
int cmd_serve(const Args& args);
int cmd_work(const Args& args);

}  // namespace dipaco::cli
