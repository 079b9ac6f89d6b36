#include "util/arg_parser.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace dipaco {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

ArgParser::ArgParser(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)) {}

void ArgParser::add_flag(const std::string& name, const std::string& help, bool* out) {
  options_.push_back(Option{name, "", help, nullptr, out});
}

void ArgParser::add_option(const std::string& name, const std::string& metavar,
                           const std::string& help, std::string* out) {
  options_.push_back(Option{name, metavar, help,
                            [out](const std::string& value) {
                              *out = value;
                              return Status::ok();
                            },
                            nullptr});
}

void ArgParser::add_option(const std::string& name, const std::string& metavar,
                           const std::string& help, int64_t* out, int64_t min_value,
                           int64_t max_value) {
  options_.push_back(
      Option{name, metavar, help,
             [name, out, min_value, max_value](const std::string& value) {
               errno = 0;
               char* end = nullptr;
               long long parsed = std::strtoll(value.c_str(), &end, 10);
               if (value.empty() || *end != '\0' || errno == ERANGE) {
                 return invalid_argument(name + " expects an integer, got '" + value + "'");
               }
               if (parsed < min_value || parsed > max_value) {
                 return invalid_argument(name + " must be in [" + std::to_string(min_value) + ", " +
                                         std::to_string(max_value) + "], got " + value);
               }
               *out = parsed;
               return Status::ok();
             },
             nullptr});
}

void ArgParser::add_option(const std::string& name, const std::string& metavar,
                           const std::string& help, double* out, double min_value,
                           double max_value) {
  options_.push_back(Option{name, metavar, help,
                            [name, out, min_value, max_value](const std::string& value) {
                              char* end = nullptr;
                              double parsed = std::strtod(value.c_str(), &end);
                              if (value.empty() || *end != '\0' || !std::isfinite(parsed)) {
                                return invalid_argument(name + " expects a number, got '" + value +
                                                        "'");
                              }
                              if (parsed < min_value || parsed > max_value) {
                                std::ostringstream message;
                                message << name << " must be in [" << min_value << ", " << max_value
                                        << "], got " << value;
                                return invalid_argument(message.str());
                              }
                              *out = parsed;
                              return Status::ok();
                            },
                            nullptr});
}

void ArgParser::add_choice(const std::string& name, const std::vector<std::string>& choices,
                           const std::string& help, std::string* out) {
  std::string metavar;
  for (const auto& choice : choices) metavar += (metavar.empty() ? "" : "|") + choice;
  options_.push_back(Option{
      name, metavar, help,
      [name, choices, metavar, out](const std::string& value) {
        if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
          return invalid_argument(name + " must be one of " + metavar + ", got '" + value + "'");
        }
        *out = value;
        return Status::ok();
      },
      nullptr});
}

void ArgParser::add_positional(const std::string& name, const std::string& help, std::string* out,
                               bool required) {
  positionals_.push_back(Positional{name, help, out, nullptr, required, required ? 1u : 0u});
}

void ArgParser::add_positional_list(const std::string& name, const std::string& help,
                                    std::vector<std::string>* out, size_t min_count) {
  positionals_.push_back(Positional{name, help, nullptr, out, min_count > 0, min_count});
}

const ArgParser::Option* ArgParser::find(const std::string& name) const {
  for (const auto& option : options_) {
    if (option.name == name) return &option;
  }
  return nullptr;
}

std::string ArgParser::closest_option(const std::string& name) const {
  std::string best;
  size_t best_distance = 4;  // suggest only near misses
  for (const auto& option : options_) {
    size_t d = edit_distance(name, option.name);
    if (d < best_distance) {
      best_distance = d;
      best = option.name;
    }
  }
  return best;
}

Status ArgParser::parse(const std::vector<std::string>& args) {
  std::vector<std::string> positional_values;
  bool only_positionals = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (only_positionals || arg.size() < 2 || arg[0] != '-' || arg == "-") {
      positional_values.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positionals = true;
      continue;
    }
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      return Status::ok();
    }
    std::string name = arg;
    std::string value;
    bool has_inline_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_inline_value = true;
    }
    const Option* option = find(name);
    if (option == nullptr) {
      std::string message = "unknown option '" + name + "' for '" + command_ + "'";
      if (std::string near = closest_option(name); !near.empty()) {
        message += " (did you mean " + near + "?)";
      }
      return invalid_argument(message + "; see '" + command_ + " --help'");
    }
    if (option->flag != nullptr) {
      if (has_inline_value) return invalid_argument(name + " takes no value");
      *option->flag = true;
      continue;
    }
    if (!has_inline_value) {
      if (i + 1 >= args.size()) {
        return invalid_argument(name + " needs a value (" + option->metavar + ")");
      }
      value = args[++i];
    }
    DIPACO_RETURN_IF_ERROR(option->set(value));
  }

  size_t next = 0;
  for (const auto& positional : positionals_) {
    if (positional.list != nullptr) {
      size_t available = positional_values.size() - next;
      if (available < positional.min_count) {
        return invalid_argument("missing " + positional.name + " for '" + command_ + "'; see '" +
                                command_ + " --help'");
      }
      positional.list->assign(positional_values.begin() + static_cast<std::ptrdiff_t>(next),
                              positional_values.end());
      next = positional_values.size();
      continue;
    }
    if (next < positional_values.size()) {
      *positional.out = positional_values[next++];
    } else if (positional.required) {
      return invalid_argument("missing " + positional.name + " for '" + command_ + "'; see '" +
                              command_ + " --help'");
    }
  }
  if (next < positional_values.size()) {
    return invalid_argument("unexpected argument '" + positional_values[next] + "' for '" +
                            command_ + "'; see '" + command_ + " --help'");
  }
  return Status::ok();
}

std::string ArgParser::usage() const {
  std::ostringstream out;
  out << "usage: " << command_;
  if (!options_.empty()) out << " [options]";
  for (const auto& positional : positionals_) {
    out << " " << (positional.required ? "" : "[") << positional.name
        << (positional.list != nullptr ? "..." : "") << (positional.required ? "" : "]");
  }
  out << "\n\n" << summary_ << "\n";
  if (!positionals_.empty()) {
    out << "\narguments:\n";
    for (const auto& positional : positionals_) {
      out << "  " << positional.name << "\n      " << positional.help << "\n";
    }
  }
  out << "\noptions:\n";
  for (const auto& option : options_) {
    out << "  " << option.name << (option.metavar.empty() ? "" : " " + option.metavar) << "\n      "
        << option.help << "\n";
  }
  out << "  --help\n      show this help\n";
  return out.str();
}

}  // namespace dipaco
