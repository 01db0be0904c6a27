// Test fixture: one attention problem with random inputs, run through the
// library on every SIMD target and through the fp64 reference.
#ifndef RELATTN_TESTS_ATTENTION_CASE_H_
#define RELATTN_TESTS_ATTENTION_CASE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "relattn/relattn.h"

namespace relattn_test {

struct CaseSpec {
  int64_t n_q = 8, n_kv = 8;
  int32_t n_heads = 1, n_kv_heads = 1, head_dim = 8, v_head_dim = 0;
  bool heads_major = false;  // [heads][tokens][dim] instead of [tokens][heads][dim]
  relattn_dtype in_dtype = RELATTN_F32, out_dtype = RELATTN_F32;
  relattn_bias_kind scheme = RELATTN_BIAS_NONE;
  int alibi_slopes = 0;  // 0: paper (max_bias 8), 1: max_bias 4, 2: caller array
  bool alibi_causal = false;
  bool t5_bidirectional = true;
  relattn_dtype t5_dtype = RELATTN_F32;
  int32_t t5_buckets = 32, t5_max_distance = 128, shaw_k = 16;  // shaw_k: both Shaw forms
  bool shaw_vector_per_head = true;
  bool causal = false;
  int64_t window = 0, n_valid_kv = -1;
  int64_t q_start = 0, k_start = 0;
  // 0: start-based; 1: arrays with gaps (sorted); 2: arrays, shuffled.
  int position_arrays = 0;
  float scale = 0.0f;
  relattn_rope rope = {};  // pairing NONE: off
  // 1: K quantised to int8 (relattn_quantize_i8); 2: Q and K.
  int int8_qk = 0;
  // K channels e % 8 == 3 are this many times the others (LLM-like outliers).
  float k_outlier = 1.0f;
  // Logit soft-cap (desc.softcap; 0: off).
  float softcap = 0.0f;
  // Learned sinks: desc.sinks[h] = sink_offset + uniform(-2, 2) per head.
  bool sinks = false;
  float sink_offset = 0.0f;
  uint64_t seed = 1;
  std::string Name() const;
};

// Owns the buffers a descriptor points into.
class Case {
 public:
  explicit Case(const CaseSpec& spec);
  Case(const Case&) = delete;
  Case& operator=(const Case&) = delete;

  const CaseSpec& spec() const { return spec_; }
  relattn_attention_desc& desc() { return desc_; }
  int32_t dv() const { return spec_.v_head_dim ? spec_.v_head_dim : spec_.head_dim; }
  size_t out_elems() const { return size_t(spec_.n_q) * spec_.n_heads * dv(); }

  // Moves every position by delta (arrays and starts).
  void ShiftPositions(int64_t delta);
  // Overwrites element (token, head, e) of input 'q', 'k' or 'v' (stored in
  // the input dtype: rounded to f16 there).
  void SetInput(char tensor, int64_t token, int32_t head, int32_t e, float value);
  // Runs the library with the current SIMD target into out (byte image of
  // desc.o, initially poisoned with NaN); returns the status.
  relattn_status Run(std::vector<uint8_t>* out, const relattn_threads* threads = nullptr);
  // Output of the last Run as [n_q][n_heads][dv] doubles.
  std::vector<double> Decode(const std::vector<uint8_t>& out) const;
  std::vector<double> Reference();
  // The reference on the float Q and K an int8 case quantised.
  std::vector<double> ReferenceOnFloatInputs();

 private:
  CaseSpec spec_;
  std::vector<uint8_t> q_, k_, v_;
  relattn_tensor q_float_{}, k_float_{};  // before int8 quantisation
  std::vector<int8_t> q8_, k8_;
  std::vector<float> q8_scales_, k8_scales_;
  std::vector<float> slopes_, table_f32_, table_scales_, sinks_;
  std::vector<uint16_t> table_f16_;
  std::vector<int8_t> table_i8_;
  std::vector<int64_t> q_pos_, k_pos_;
  relattn_attention_desc desc_;
};

// The SIMD targets compiled into the library that this CPU supports; fails
// the test if there are none.
std::vector<int64_t> TargetsUnderTest();
// Forces the library onto one target (0: back to the best).
void UseTarget(int64_t target);
std::string TargetNameOf(int64_t target);

// Runs body(target) with the library forced onto each target of
// TargetsUnderTest() in turn (which fails the test rather than run none),
// then puts it back on the best target, also when body throws (a failed
// REQUIRE).
template <class F>
void ForEachTarget(F&& body) {
  struct BackToBest {
    ~BackToBest() { UseTarget(0); }
  } back_to_best;
  for (int64_t target : TargetsUnderTest()) {
    UseTarget(target);
    body(target);
  }
}

// Error bound, in absolute terms for inputs in [-1, 1], per output dtype:
// see the comment in attention_case.cc.
double ErrorBound(relattn_dtype out_dtype);

double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b);

// Whether row (i, h) of a decoded output [n_q][heads][dv] holds a NaN.
bool RowHasNaN(const std::vector<double>& out, int64_t i, int32_t h, int32_t heads, int32_t dv);

// The largest error noted per label, printed when the suite ends
// ("<suite>: max |error| <label>: 1.2e-07") for the closing notes' figures.
class WorstErrors {
 public:
  explicit WorstErrors(const char* suite) : suite_(suite) {}
  ~WorstErrors();
  void Note(const std::string& label, double err);

 private:
  const char* suite_;
  std::map<std::string, double> worst_;
};

// On every target (ForEachTarget): run() gives the output of one run on the
// current target, which must be within bound of expected (max |difference|);
// a failure names the target and context. Returns the worst error over the
// targets.
double CheckAllTargets(const std::function<std::vector<double>()>& run,
                       const std::vector<double>& expected, double bound,
                       const std::string& context);
// The same for c.Run() (which must succeed), decoded.
double CheckAllTargets(Case& c, const std::vector<double>& expected, double bound,
                       const std::string& context);
// spec's case against its fp64 reference, bound ErrorBound(spec.out_dtype),
// context spec.Name().
double CheckAllTargets(const CaseSpec& spec);

// A relattn_parallel_for_fn on std::thread (one thread per task), to drive the
// library's workers in tests, also under ThreadSanitizer.
void StdThreadsParallelFor(void* context, size_t n_tasks, relattn_task_fn task, void* task_arg);

}  // namespace relattn_test

#endif  // RELATTN_TESTS_ATTENTION_CASE_H_
