// ArgParser: command-line flags for the dipaco binaries, with errors a user can act on.
//
//   ArgParser p("dipaco data tokenize", "Write token files from a corpus.");
//   p.add_option("--vocab-size", "N", "vocabulary size", &vocab);   // --vocab-size 8000 / =8000
//   p.add_flag("--force", "overwrite existing output", &force);
//   p.add_positional("CORPUS", "corpus directory", &corpus);
//   if (Status s = p.parse(args); !s) { print s.message() and p.usage(); exit 2 }
//
// Unknown flags name the closest known one; values are range-checked; --help is built in.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "util/status.h"

namespace dipaco {

class ArgParser {
 public:
  ArgParser(std::string command, std::string summary);

  void add_flag(const std::string& name, const std::string& help, bool* out);
  void add_option(const std::string& name, const std::string& metavar, const std::string& help,
                  std::string* out);
  void add_option(const std::string& name, const std::string& metavar, const std::string& help,
                  int64_t* out, int64_t min_value, int64_t max_value);
  void add_option(const std::string& name, const std::string& metavar, const std::string& help,
                  double* out, double min_value, double max_value);
  // One of `choices`, e.g. --model-type bpe|unigram.
  void add_choice(const std::string& name, const std::vector<std::string>& choices,
                  const std::string& help, std::string* out);
  void add_positional(const std::string& name, const std::string& help, std::string* out,
                      bool required = true);
  // Takes all remaining positionals (at least `min_count`).
  void add_positional_list(const std::string& name, const std::string& help,
                           std::vector<std::string>* out, size_t min_count = 1);

  // Parses args (without the program/subcommand names). On --help, help_requested() is true
  // and parse returns ok without checking required positionals.
  Status parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_requested_; }
  std::string usage() const;

 private:
  struct Option {
    std::string name;
    std::string metavar;  // empty for boolean flags
    std::string help;
    std::function<Status(const std::string&)> set;  // for options with a value
    bool* flag = nullptr;                           // for boolean flags
  };
  struct Positional {
    std::string name;
    std::string help;
    std::string* out = nullptr;
    std::vector<std::string>* list = nullptr;
    bool required = true;
    size_t min_count = 0;
  };
  const Option* find(const std::string& name) const;
  std::string closest_option(const std::string& name) const;

  std::string command_;
  std::string summary_;
  std::vector<Option> options_;
  std::vector<Positional> positionals_;
  bool help_requested_ = false;
};

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace dipaco
