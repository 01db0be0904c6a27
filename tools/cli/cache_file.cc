#include "tools/cli/cache_file.h"

#include "relattn/relattn.hpp"

namespace relattn_cli {
namespace {

struct DtypeName {
  relattn_dtype dtype;
  const char* name;
};
constexpr DtypeName kStorageDtypes[] = {{RELATTN_F32, "f32"},
                                        {RELATTN_F16, "f16"},
                                        {RELATTN_BF16, "bf16"},
                                        {RELATTN_I8, "i8"},
                                        {RELATTN_Q4, "q4"}};

}  // namespace

void LoadCache(const Args& args, CacheFile* file) {
  const std::string path = args.String("--cache");
  std::string error;
  if (!ReadFile(path, &file->bytes, &error)) args.Fail("--cache " + path + ": " + error);
  const relattn::Status status = relattn::MakeStatus(
      relattn_kv_cache_attach(file->bytes.data(), file->bytes.size(), &file->cache));
  if (!status) args.Fail("--cache " + path + ": " + status.ToString());
}

void SaveCache(const Args& args, const std::string& flag, const CacheFile& file) {
  std::string error;
  if (!WriteFileAtomically(args.String(flag), {{file.bytes.data(), file.bytes.size()}}, &error)) {
    args.Fail(flag + ": " + error);
  }
}

relattn_kv_cache_desc CacheDesc(const relattn_kv_cache* cache) {
  relattn_kv_cache_desc desc;
  const relattn::Status status = relattn::MakeStatus(relattn_kv_cache_get_desc(cache, &desc));
  if (!status) Die("cache", "reading the cache's desc: " + status.ToString());
  return desc;
}

relattn_dtype ParseStorageDtype(const Args& args, const std::string& flag, relattn_dtype fallback) {
  if (!args.Has(flag)) return fallback;
  const std::string name = args.String(flag);
  for (const DtypeName& d : kStorageDtypes) {
    if (name == d.name) return d.dtype;
  }
  args.Usage(flag + " '" + name + "': must be f32, f16, bf16, i8 or q4");
}

const char* StorageDtypeName(relattn_dtype dtype) {
  for (const DtypeName& d : kStorageDtypes) {
    if (dtype == d.dtype) return d.name;
  }
  return "?";
}

}  // namespace relattn_cli
