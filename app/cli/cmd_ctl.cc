// dipaco ctl: the operator's RPCs against a running `dipaco serve`, for headless fleets (what
// the studio's dashboard does with buttons): list workers, drain / undrain a worker, preempt a
// lease, pause / resume a run, change H, and watch a run's events. The channel, the token and
// the calls are the studio's attach code (app/studio: attach_channel, RemoteRunControl,
// watch_event); errors say what to check (no server, the token, TLS, an unknown id).
#include <grpc/support/log.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "attach_channel.h"
#include "attach_errors.h"
#include "cli/commands.h"
#include "cli/stop_signal.h"
#include "coordinator/clock.h"
#include "data/json_writer.h"
#include "remote_run_control.h"
#include "rpc/address.h"
#include "rpc/auth.h"
#include "util/arg_parser.h"
#include "util/human_units.h"
#include "watch_event.h"

namespace dipaco::cli {
namespace {

struct CtlCommand {
  const char* name;
  const char* arguments;  // for the usage line
  const char* summary;
};

constexpr CtlCommand kCtlCommands[] = {
    {"workers", "", "list the workers: id, host, state, lease, last heard, version, devices"},
    {"drain", "ID", "worker ID finishes its task and gets no more, across its restarts"},
    {"undrain", "ID", "drained worker ID takes tasks again"},
    {"preempt", "LEASE", "end lease LEASE now; its task is requeued"},
    {"pause", "RUN", "lease no new tasks of run RUN; leases in flight finish"},
    {"resume", "RUN", "lease run RUN's tasks again"},
    {"inner-steps", "RUN N", "H = N inner steps for run RUN's outer steps opened from now on"},
    {"watch", "RUN", "print run RUN's events, one a line, until it finishes (or --for, Ctrl-C)"},
};

constexpr const char* kDefaultAddress = "127.0.0.1:7443";  // dipaco serve's default

void print_ctl_help(FILE* out) {
  std::fprintf(out,
               "usage: dipaco ctl [--address HOST:PORT] [--token-file FILE] "
               "[--ca-file FILE | --insecure] COMMAND [ARGS]\n\n"
               "Operator actions on a running `dipaco serve` (the studio dashboard's, from a "
               "shell).\n\ncommands:\n");
  for (const CtlCommand& c : kCtlCommands) {
    std::string call = std::string(c.name) + (*c.arguments ? " " : "") + c.arguments;
    std::fprintf(out, "  %-16s %s\n", call.c_str(), c.summary);
  }
  std::fprintf(
      out,
      "\nconnection (every command):\n"
      "  --address HOST:PORT  where dipaco serve listens (default %s)\n"
      "  --token-file FILE    the operator token (dipaco serve --operator-token-file)\n"
      "  --ca-file FILE       PEM CA of the server's certificate (default: system roots)\n"
      "  --insecure           plaintext, for dipaco serve --insecure\n\n"
      "exit codes: 0 done, 1 the coordinator refused or could not be reached, or a local file\n"
      "(--token-file, --ca-file) could not be read, 2 usage.\n"
      "'dipaco ctl COMMAND --help' describes a command.\n",
      kDefaultAddress);
}

struct Connection {
  std::string address = kDefaultAddress;
  std::string token_file;
  std::string ca_file;
  bool insecure = false;
};

void add_connection_options(ArgParser& parser, Connection* c) {
  parser.add_option("--address", "HOST:PORT",
                    std::string("where dipaco serve listens (default ") + kDefaultAddress + ")",
                    &c->address);
  parser.add_option("--token-file", "FILE",
                    "the operator token (the file given to dipaco serve --operator-token-file)",
                    &c->token_file);
  parser.add_option("--ca-file", "FILE",
                    "PEM CA that signed the server's certificate (default: system roots)",
                    &c->ca_file);
  parser.add_flag("--insecure", "plaintext, for a dipaco serve started with --insecure",
                  &c->insecure);
}

// The command: the first argument that is neither an option nor an option's value.
const CtlCommand* find_command(const Args& args, size_t* at) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--address" || arg == "--token-file" || arg == "--ca-file") {
      ++i;
      continue;
    }
    if (!arg.empty() && arg[0] == '-') continue;
    *at = i;
    for (const CtlCommand& c : kCtlCommands) {
      if (arg == c.name) return &c;
    }
    return nullptr;
  }
  *at = args.size();
  return nullptr;
}

Result<int64_t> parse_positive(const std::string& text, const char* what) {
  int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value <= 0)
    return invalid_argument(std::string(what) + " must be a positive whole number, not '" + text +
                            "'");
  return value;
}

// "3 s ago", "4 min ago", "2 h ago", "never".
std::string ago(int64_t unix_ms, int64_t now_ms) {
  if (unix_ms <= 0) return "never";
  const int64_t s = std::max<int64_t>(0, (now_ms - unix_ms) / 1000);
  if (s < 120) return std::to_string(s) + " s ago";
  if (s < 7200) return std::to_string(s / 60) + " min ago";
  return std::to_string(s / 3600) + " h ago";
}

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void print_workers(const std::vector<WorkerStatus>& workers) {
  if (workers.empty()) {
    std::printf("no worker has registered with this coordinator\n");
    return;
  }
  const int64_t now = now_unix_ms();
  std::vector<std::vector<std::string>> rows = {
      {"ID", "HOST", "STATE", "LEASE", "LAST HEARD", "VERSION", "DEVICES"}};
  for (const WorkerStatus& w : workers)
    rows.push_back({w.worker_id, w.host, w.state,
                    w.live_lease_id == 0 ? "-" : std::to_string(w.live_lease_id),
                    ago(w.last_heartbeat_ms, now), w.version, w.devices});
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

// `workers --json`: one JSON array for scripts (jq); times in Unix milliseconds, lease null when
// idle.
void print_workers_json(const std::vector<WorkerStatus>& workers) {
  std::string out = "[";
  for (size_t i = 0; i < workers.size(); ++i) {
    const WorkerStatus& w = workers[i];
    out += i == 0 ? "\n  " : ",\n  ";
    out += "{\"id\": " + json_quote(w.worker_id) + ", \"host\": " + json_quote(w.host) +
           ", \"state\": " + json_quote(w.state) + ", \"lease\": " +
           (w.live_lease_id == 0 ? std::string("null") : std::to_string(w.live_lease_id)) +
           ", \"last_heard_unix_ms\": " + std::to_string(w.last_heartbeat_ms) +
           ", \"version\": " + json_quote(w.version) + ", \"devices\": " + json_quote(w.devices) +
           "}";
  }
  out += workers.empty() ? "]\n" : "\n]\n";
  std::fputs(out.c_str(), stdout);
}

// One line of `watch`: time, kind, the structured fields, the sentence.
std::string event_line(const RunEvent& e) {
  std::string line = format_unix_ms(e.time_ms) + "  " + event_kind_name(e.kind);
  if (e.kind == EventKind::kMetric) {
    return line + "  path " + std::to_string(e.path_id) + " outer step " +
           std::to_string(e.outer_step) + " inner step " + std::to_string(e.inner_step) + "  " +
           e.metric_name + " = " + format_double("%g", e.value);
  }
  if (!e.detail.empty()) line += "  " + e.detail;
  return line;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "dipaco ctl: %s\n", message.c_str());
  return kExitFailure;
}

int report(const Result<OperatorReply>& reply) {
  if (!reply.is_ok()) return fail(reply.status().message());
  std::printf("%s%s\n", reply->message.c_str(), reply->changed ? "" : " (nothing changed)");
  return kExitOk;
}

// Streams WatchRun until the run finishes, a stop signal, or `for_seconds` (0 = no limit).
int watch(const std::shared_ptr<grpc::Channel>& channel, const studio::AttachSettings& settings,
          int64_t for_seconds) {
  const std::atomic<bool>* stop = install_stop_signals();
  auto stub = v1::Coordinator::NewStub(channel);
  grpc::ClientContext context;
  add_bearer_token(context, settings.token);
  v1::RunRequest request;
  request.set_run_id(std::to_string(settings.run_id));
  auto reader = stub->WatchRun(&context, request);
  // Cancels the stream on a signal or when --for has elapsed; Read() then returns false.
  std::atomic<bool> done{false}, cancelled{false};
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(for_seconds);
  std::thread canceller([&] {
    while (!done.load()) {
      if (stop->load() || (for_seconds > 0 && std::chrono::steady_clock::now() >= until)) {
        cancelled = true;
        context.TryCancel();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  v1::RunEvent event;
  bool finished = false;
  while (reader->Read(&event)) {
    auto folded = studio::from_watch_event(event, settings.run_id);
    if (!folded) continue;  // a kind this build does not know
    std::printf("%s\n", event_line(*folded).c_str());
    std::fflush(stdout);
    if (folded->kind == EventKind::kRunFinished) {
      finished = true;
      cancelled = true;
      context.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  done = true;
  canceller.join();
  if (finished || (cancelled && status.error_code() == grpc::StatusCode::CANCELLED)) return kExitOk;
  if (status.ok()) return fail("the coordinator at " + settings.address + " ended the stream");
  return fail(studio::explain_attach_failure(status, settings));
}

}  // namespace

int cmd_ctl(const Args& args) {
  // gRPC's own log lines (a raw "Handshake failed ..." before ctl's explanation) only confuse
  // here: every failure is reported in ctl's words.
  gpr_set_log_function([](gpr_log_func_args*) {});
  size_t at = 0;
  const CtlCommand* command = find_command(args, &at);
  if (command == nullptr) {
    const bool help = std::find_if(args.begin(), args.end(), [](const std::string& a) {
                        return a == "--help" || a == "-h";
                      }) != args.end();
    if (help && at == args.size()) {
      print_ctl_help(stdout);
      return kExitOk;
    }
    if (at < args.size())
      std::fprintf(stderr, "dipaco ctl: unknown command '%s'\n", args[at].c_str());
    else
      std::fprintf(stderr, "dipaco ctl: no command given\n");
    print_ctl_help(stderr);
    return kExitUsage;
  }
  Args rest = args;
  rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(at));
  const std::string name = command->name;
  ArgParser parser("dipaco ctl " + name, command->summary);
  Connection connection;
  add_connection_options(parser, &connection);
  std::string first, second;
  int64_t for_seconds = 0;
  bool json = false;
  if (name == "workers")
    parser.add_flag("--json", "one JSON array instead of the table (for scripts)", &json);
  if (name == "drain" || name == "undrain") parser.add_positional("ID", "worker id", &first);
  if (name == "preempt") parser.add_positional("LEASE", "lease id", &first);
  if (name == "pause" || name == "resume" || name == "inner-steps" || name == "watch")
    parser.add_positional("RUN", "run id (dipaco serve prints \"run N from ...\")", &first);
  if (name == "inner-steps") parser.add_positional("N", "inner steps per outer step", &second);
  if (name == "watch")
    parser.add_option("--for", "SECONDS", "stop watching after this long (0 = until it ends)",
                      &for_seconds, 0, 366LL * 24 * 3600);
  const auto usage_error = [&](const std::string& message) {
    std::fprintf(stderr, "dipaco ctl %s: %s\n%s", name.c_str(), message.c_str(),
                 parser.usage().c_str());
    return kExitUsage;
  };
  // A negative number is a value, not an unknown option: say which argument must be positive.
  if (name != "drain" && name != "undrain") {
    std::vector<std::string> labels;  // "RUN N" -> {"RUN", "N"}
    for (std::string_view left = command->arguments; !left.empty();) {
      const size_t space = left.find(' ');
      labels.emplace_back(left.substr(0, space));
      left = space == std::string_view::npos ? std::string_view() : left.substr(space + 1);
    }
    size_t positional = 0;
    for (size_t i = 0; i < rest.size(); ++i) {
      const std::string& arg = rest[i];
      const std::string& before = i > 0 ? rest[i - 1] : std::string();
      if (before.starts_with("--") && before.find('=') == std::string::npos &&
          before != "--insecure" && before != "--help")
        continue;  // an option's value
      if (arg.size() > 1 && arg[0] == '-' && arg[1] >= '0' && arg[1] <= '9' &&
          positional < labels.size())
        return usage_error(labels[positional] + " must be a positive whole number, not '" + arg +
                           "'");
      if (!arg.starts_with("-")) ++positional;
    }
  }
  if (Status s = parser.parse(rest); !s) return usage_error(s.message());
  if (parser.help_requested()) {
    std::printf("%s", parser.usage().c_str());
    return kExitOk;
  }
  if (Status address = check_dial_address(connection.address); !address)
    return usage_error("--address: " + address.message());
  if (connection.insecure && !connection.ca_file.empty())
    return usage_error("--insecure and --ca-file exclude each other");
  if (connection.token_file.empty())
    return usage_error(
        "--token-file is required: the operator token, the file given to dipaco serve "
        "--operator-token-file");
  int64_t run_id = 1, number = 0;
  if (name == "pause" || name == "resume" || name == "inner-steps" || name == "watch") {
    auto parsed = parse_positive(first, "RUN");
    if (!parsed.is_ok()) return usage_error(parsed.status().message());
    run_id = *parsed;
  }
  if (name == "preempt" || name == "inner-steps") {
    auto parsed =
        parse_positive(name == "preempt" ? first : second, name == "preempt" ? "LEASE" : "N");
    if (!parsed.is_ok()) return usage_error(parsed.status().message());
    number = *parsed;
    if (name == "inner-steps" && number > UINT32_MAX)
      return usage_error("N " + second + " is too large");
  }

  auto token = read_token_file(connection.token_file);
  if (!token.is_ok()) return fail(token.status().message());
  studio::AttachSettings settings;
  settings.address = connection.address;
  settings.tls = !connection.insecure;
  settings.ca_file = connection.ca_file;
  settings.token = *token;
  settings.run_id = run_id;
  settings.command_line = true;
  auto channel = studio::attach_channel(settings);
  if (!channel.is_ok()) return fail(channel.status().message());
  if (name == "watch") return watch(*channel, settings, for_seconds);

  studio::RemoteRunControl control;
  control.attach(*channel, settings);
  if (name == "workers") {
    auto workers = control.workers();
    if (!workers.is_ok()) return fail(workers.status().message());
    if (json) {
      print_workers_json(*workers);
    } else {
      print_workers(*workers);
    }
    return kExitOk;
  }
  if (name == "drain") return report(control.drain(first));
  if (name == "undrain") return report(control.undrain(first));
  if (name == "preempt") return report(control.preempt(number));
  if (name == "pause") return report(control.pause());
  if (name == "resume") return report(control.resume());
  return report(control.set_inner_steps(static_cast<uint32_t>(number)));  // inner-steps
}

}  // namespace dipaco::cli
