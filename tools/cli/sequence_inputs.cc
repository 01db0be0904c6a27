#include "tools/cli/sequence_inputs.h"

#include <string>

namespace relattn_cli {
namespace {

// The int64 [n] array of file `flag`.
NpyArray LoadTokens(const Args& args, const std::string& flag, int64_t n) {
  NpyArray a;
  std::string error;
  const std::string path = args.String(flag);
  if (!ReadNpy(path, &a, &error)) args.Fail(flag + " " + path + ": " + error);
  if (a.dtype != NpyDtype::kI64 || a.shape.size() != 1 || a.shape[0] != n) {
    args.Fail(flag + " " + path + " (" + NpyDtypeName(a.dtype) + " " + ShapeString(a.shape) +
              "): must be int64 [" + std::to_string(n) + "], one per token");
  }
  return a;
}

const int64_t* Int64s(const NpyArray& a) {
  return reinterpret_cast<const int64_t*>(a.bytes.data());
}

void LoadSegments(const Args& args, const std::string& flag, int64_t n, std::vector<int32_t>* ids) {
  const NpyArray a = LoadTokens(args, flag, n);
  ids->resize(size_t(n));
  for (int64_t t = 0; t < n; ++t) {
    const int64_t id = Int64s(a)[t];
    if (id < INT32_MIN || id > INT32_MAX) {
      args.Fail(flag + " " + args.String(flag) + ": id " + std::to_string(id) + " of token " +
                std::to_string(t) + " is outside the int32 range");
    }
    (*ids)[t] = int32_t(id);
  }
}

}  // namespace

void SetPositions(const Args& args, const std::string& which, int64_t n, NpyArray* array,
                  relattn_positions* pos) {
  const std::string flag = "--" + which + "-positions";
  if (!args.Has(flag)) return;
  if (args.Has("--" + which + "-start")) {
    args.Usage(flag + " and --" + which + "-start: give one of them");
  }
  *array = LoadTokens(args, flag, n);
  pos->positions = Int64s(*array);
  pos->start = 0;
}

void SetSequenceInputs(const Args& args, int64_t n_kv, SequenceInputs* in,
                       relattn_attention_desc* desc) {
  SetPositions(args, "q", desc->n_q, &in->q_positions, &desc->q_pos);
  SetPositions(args, "k", n_kv, &in->k_positions, &desc->k_pos);
  if (args.Has("--q-segments") != args.Has("--k-segments")) {
    args.Usage("--q-segments and --k-segments: give both or neither");
  }
  if (args.Has("--q-segments")) {
    LoadSegments(args, "--q-segments", desc->n_q, &in->q_segments);
    LoadSegments(args, "--k-segments", n_kv, &in->k_segments);
    desc->mask.q_segments = in->q_segments.data();
    desc->mask.k_segments = in->k_segments.data();
  }
  desc->mask.first_valid_kv = args.Int64("--first-valid-kv", 0, 0, INT64_MAX);
  if (args.Has("--lse-out")) {
    in->lse.resize(size_t(desc->n_q) * desc->n_heads);
    desc->lse = in->lse.data();
  }
}

}  // namespace relattn_cli
