#include "tools/cli/args.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace relattn_cli {
namespace {

bool LooksLikeNumber(const std::string& s) {
  return s.size() > 1 && s[0] == '-' && (std::isdigit(uint8_t(s[1])) || s[1] == '.');
}

}  // namespace

std::vector<OptionSpec> Concat(std::initializer_list<std::vector<OptionSpec>> lists) {
  std::vector<OptionSpec> all;
  for (const std::vector<OptionSpec>& list : lists) all.insert(all.end(), list.begin(), list.end());
  return all;
}

void Die(const std::string& command, const std::string& message, int status) {
  std::fprintf(stderr, "relattn %s: %s\n", command.c_str(), message.c_str());
  std::exit(status);
}

Args::Args(const std::string& command, const std::vector<OptionSpec>& specs, int argc, char** argv,
           int first)
    : command_(command) {
  bool options_ended = false;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (options_ended || arg.size() < 2 || arg[0] != '-' || LooksLikeNumber(arg)) {
      items_.push_back({"", {arg}});
      continue;
    }
    if (arg == "--") {
      options_ended = true;
      continue;
    }
    std::vector<std::string> values;
    const size_t eq = arg.find('=');
    if (arg.compare(0, 2, "--") == 0 && eq != std::string::npos) {
      values.push_back(arg.substr(eq + 1));
      arg.resize(eq);
    }
    int arity = -1;
    for (const OptionSpec& spec : specs) {
      if (arg == spec.name) arity = spec.arity;
    }
    if (arg == "--help" || arg == "-h") arg = "--help", arity = 0;
    if (arity < 0) Usage("unknown option " + arg + " (see relattn " + command_ + " --help)");
    if (!values.empty() && arity != 1) Usage(arg + " does not take '=VALUE'");
    while (int(values.size()) < arity) {
      if (++i >= argc) {
        Usage(arg + " needs " + std::to_string(arity) + (arity == 1 ? " value" : " values"));
      }
      values.push_back(argv[i]);
    }
    items_.push_back({arg, values});
  }
}

const Args::Item* Args::Last(const std::string& name) const {
  for (auto it = items_.rbegin(); it != items_.rend(); ++it) {
    if (it->name == name) return &*it;
  }
  return nullptr;
}

bool Args::Has(const std::string& name) const { return Last(name) != nullptr; }

void Args::NoPositionals() const {
  for (const Item& item : items_) {
    if (item.name.empty()) Usage("unexpected argument '" + item.values[0] + "'");
  }
}

void Args::Require(const std::string& name) const {
  if (!Has(name)) Usage(name + " is required (see relattn " + command_ + " --help)");
}

std::string Args::String(const std::string& name, const std::string& fallback) const {
  const Item* item = Last(name);
  return item ? item->values.at(0) : fallback;
}

int64_t Args::Int64(const std::string& name, int64_t fallback, int64_t lo, int64_t hi) const {
  const Item* item = Last(name);
  return item ? ParseInt64(name, item->values.at(0), lo, hi) : fallback;
}

double Args::Double(const std::string& name, double fallback) const {
  const Item* item = Last(name);
  return item ? ParseDouble(name, item->values.at(0)) : fallback;
}

int64_t Args::ParseInt64(const std::string& what, const std::string& text, int64_t lo,
                         int64_t hi) const {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || std::isspace(uint8_t(text[0]))) {
    Usage(what + " '" + text + "' is not an integer");
  }
  if (errno == ERANGE || v < lo || v > hi) {
    Usage(what + " = " + text + ": must be in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return v;
}

double Args::ParseDouble(const std::string& what, const std::string& text) const {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || std::isspace(uint8_t(text[0])) || !std::isfinite(v)) {
    Usage(what + " '" + text + "' is not a finite number");
  }
  return v;
}

}  // namespace relattn_cli
