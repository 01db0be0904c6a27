// relattn: the library from the command line. `relattn --help` lists the subcommands.
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "relattn/relattn.h"
#include "tools/cli/args.h"
#include "tools/cli/commands.h"

namespace relattn_cli {
namespace {

constexpr char kUsage[] =
    R"(usage: relattn <command> [options]   (relattn <command> --help for each)
  slopes    ALiBi slopes of N heads, one per line
  buckets   T5 buckets of key - query offsets, one per line
  run       one attention call on .npy arrays, written to an .npy file
  merge     two partial attentions (over disjoint keys) and their lse combined into one
  cache     a KV cache in a file: create, append, truncate, info, attention
  bench     the benchmark (relattn-bench: relattn against XNNPACK and the machine's limits)
  demo      the demo (relattn-demo: every scheme and mask against the fp64 reference)
  --version the library's version and the SIMD target its kernels run on
)";

// A tool built beside this one: bench and demo are separate programs (they link the fp64
// reference and XNNPACK, which this tool does not), run in place of this process.
struct Tool {
  const char* command;  // "bench"
  const char* program;  // "relattn-bench"
  const char* built;    // its path in the build tree, "" when it was not built
  const char* how;      // how to build it
  const char* usage;    // printed for --help; nullptr: the program's own --help
};

#ifndef RELATTN_BENCH_PATH
#define RELATTN_BENCH_PATH ""
#endif
#ifndef RELATTN_DEMO_PATH
#define RELATTN_DEMO_PATH ""
#endif
const Tool kTools[] = {
    {"bench", "relattn-bench", RELATTN_BENCH_PATH,
     "configure with -DRELATTN_BUILD_BENCH=ON (needs libxnnpack-dev)", nullptr},
    {"demo", "relattn-demo", RELATTN_DEMO_PATH, "build the relattn-demo target",
     "usage: relattn demo [--n N] [--d D] [--heads H] [--kv-heads K]\n"
     "Runs every position scheme under every mask on one f16 prefill problem (default n 256,\n"
     "d 64, 8 heads on 2 KV heads), checks each against the fp64 reference and prints the\n"
     "error and the time of both; exit status 1 if an error exceeds 5e-6.\n"}};

// This executable's directory, from /proc/self/exe; "" if unknown.
std::string SelfDirectory() {
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0) return "";
  path[n] = '\0';
  const char* slash = std::strrchr(path, '/');
  return slash ? std::string(path, size_t(slash - path)) : "";
}

int ExecTool(const Tool& tool, int argc, char** argv, int first) {
  const bool help = first < argc && std::strcmp(argv[first], "--help") == 0;
  if (help && tool.usage) return std::fputs(tool.usage, stdout), 0;
  const std::string beside = SelfDirectory() + "/" + tool.program;
  for (const std::string& path : {beside, std::string(tool.built)}) {
    if (path.empty() || access(path.c_str(), X_OK) != 0) continue;
    std::vector<char*> args = {const_cast<char*>(tool.program)};
    for (int i = first; i < argc; ++i) args.push_back(argv[i]);
    args.push_back(nullptr);
    execv(path.c_str(), args.data());
    Die(tool.command, "cannot run " + path + ": " + std::strerror(errno));
  }
  if (help) {
    std::printf("usage: relattn %s [options]: runs %s, which is not built here (%s)\n",
                tool.command, tool.program, tool.how);
    return 0;
  }
  Die(tool.command, std::string(tool.program) + " is not built: " + tool.how);
}

}  // namespace
}  // namespace relattn_cli

int main(int argc, char** argv) {
  using namespace relattn_cli;
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "--help" || command == "-h" || command == "help") {
    return std::fputs(kUsage, stdout), 0;
  }
  if (command == "--version") {
    std::printf("relattn %s\ntarget %s\n", relattn_version_string(), relattn_active_target());
    return 0;
  }
  if (command == "slopes") return SlopesCommand(argc, argv, 2);
  if (command == "buckets") return BucketsCommand(argc, argv, 2);
  if (command == "run") return RunCommand(argc, argv, 2);
  if (command == "merge") return MergeCommand(argc, argv, 2);
  if (command == "cache") return CacheCommand(argc, argv, 2);
  for (const Tool& tool : kTools) {
    if (command == tool.command) return ExecTool(tool, argc, argv, 2);
  }
  if (command.empty()) return std::fputs(kUsage, stderr), 2;
  std::fprintf(stderr, "relattn: unknown command '%s' (relattn --help lists them)\n",
               command.c_str());
  return 2;
}
