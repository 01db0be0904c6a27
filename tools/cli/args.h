// Command-line arguments of one subcommand: "--name VALUE..." options of a fixed arity (0 for a
// switch), "--name=VALUE" for arity 1, and positional arguments, which may be negative numbers
// ("-5" is a value, not a flag). "--" ends the options. Any error ends the program with one line
// on stderr ("relattn <command>: <message>") and exit status 2.
#ifndef RELATTN_TOOLS_CLI_ARGS_H_
#define RELATTN_TOOLS_CLI_ARGS_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace relattn_cli {

// Prints "relattn <command>: <message>" to stderr and exits with status.
[[noreturn]] void Die(const std::string& command, const std::string& message, int status = 1);

struct OptionSpec {
  const char* name;  // "--heads"
  int arity;         // values after the name: 0 (a switch), 1 or 2
};

// The lists, one after the other (a command's options made of shared groups).
std::vector<OptionSpec> Concat(std::initializer_list<std::vector<OptionSpec>> lists);

class Args {
 public:
  struct Item {
    std::string name;  // "" for a positional argument
    std::vector<std::string> values;
  };

  // Parses argv[first..argc) against specs; "--help" is always accepted.
  Args(const std::string& command, const std::vector<OptionSpec>& specs, int argc, char** argv,
       int first);

  bool Has(const std::string& name) const;
  bool Help() const { return Has("--help"); }
  // Every option and positional argument, in command-line order.
  const std::vector<Item>& Items() const { return items_; }

  // The last value of an option of arity 1, or fallback if it is absent.
  std::string String(const std::string& name, const std::string& fallback = "") const;
  int64_t Int64(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const;
  double Double(const std::string& name, double fallback) const;
  // Dies unless the option is present.
  void Require(const std::string& name) const;

  // Strict conversions for values: the whole text must be a number of the type, in range.
  int64_t ParseInt64(const std::string& what, const std::string& text, int64_t lo = INT64_MIN,
                     int64_t hi = INT64_MAX) const;
  double ParseDouble(const std::string& what, const std::string& text) const;

  const std::string& Command() const { return command_; }
  // Dies with status 2 (bad arguments) or 1 (files and library errors).
  [[noreturn]] void Usage(const std::string& message) const { Die(command_, message, 2); }
  [[noreturn]] void Fail(const std::string& message) const { Die(command_, message, 1); }
  // Dies (status 2) on a positional argument: for commands that take options only.
  void NoPositionals() const;

 private:
  const Item* Last(const std::string& name) const;

  std::string command_;
  std::vector<Item> items_;
};

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_ARGS_H_
