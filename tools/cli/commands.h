// The relattn tool's subcommands. Each takes the whole argv and the index of its first argument
// and returns the process exit status; errors end the process through Die() (tools/cli/args.h).
#ifndef RELATTN_TOOLS_CLI_COMMANDS_H_
#define RELATTN_TOOLS_CLI_COMMANDS_H_

namespace relattn_cli {

int SlopesCommand(int argc, char** argv, int first);          // tables.cc
int BucketsCommand(int argc, char** argv, int first);         // tables.cc
int RunCommand(int argc, char** argv, int first);             // run.cc
int MergeCommand(int argc, char** argv, int first);           // merge.cc
int CacheCommand(int argc, char** argv, int first);           // cache.cc: cache <subcommand>
int CacheAttentionCommand(int argc, char** argv, int first);  // cache_attention.cc

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_COMMANDS_H_
