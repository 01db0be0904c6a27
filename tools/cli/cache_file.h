// A KV cache as a file: the cache's relattn_kv_cache_size bytes as relattn_kv_cache_init laid
// them out (pointer-free, so a byte copy is a cache; the Python package's KVCache.tobytes()
// and KVCache.frombytes() read and write the same bytes). Read into aligned memory and checked
// by relattn_kv_cache_attach; rewritten through FILE.partial and a rename.
#ifndef RELATTN_TOOLS_CLI_CACHE_FILE_H_
#define RELATTN_TOOLS_CLI_CACHE_FILE_H_

#include <string>

#include "relattn/relattn.h"
#include "tools/cli/args.h"
#include "tools/cli/files.h"

namespace relattn_cli {

struct CacheFile {
  AlignedBytes bytes;
  relattn_kv_cache* cache = nullptr;  // in bytes
};

// Reads the file --cache names and attaches it; fails (status 1) if it cannot be read, or
// with the library's message if attach refuses it (corrupted, truncated, another version).
void LoadCache(const Args& args, CacheFile* file);

// Writes file's bytes to the file option `flag` names (through FILE.partial); fails (status 1)
// if it cannot.
void SaveCache(const Args& args, const std::string& flag, const CacheFile& file);

// The desc an attached cache was laid out with (v_head_dim resolved, rope's tables NULL).
relattn_kv_cache_desc CacheDesc(const relattn_kv_cache* cache);

// Storage dtype names: f32, f16, bf16, i8, q4. ParseStorageDtype is a usage error otherwise.
relattn_dtype ParseStorageDtype(const Args& args, const std::string& flag, relattn_dtype fallback);
const char* StorageDtypeName(relattn_dtype dtype);

}  // namespace relattn_cli

#endif  // RELATTN_TOOLS_CLI_CACHE_FILE_H_
