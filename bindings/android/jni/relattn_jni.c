/* JNI glue for org.relattn.RelAttn and org.relattn.KVCache (bindings/android/java/): reads
 * RelAttn.Params (and its RelAttn.Rope) into a relattn_attention_desc, points it at the
 * caller's arrays (float[]: F32; byte[] with float[] row scales: I8) or direct buffers (F32,
 * F16), or at a KVCache's memory, sizes already checked by the Java side, and runs one call.
 * A KVCache lives in a direct ByteBuffer its Java object owns, sliced at an address aligned to
 * RELATTN_KV_CACHE_ALIGNMENT: the relattn_kv_cache is its first byte, and the glue keeps no
 * state. Failures throw: RelAttnException with the library's status and message,
 * IllegalArgumentException for a buffer the Java checks cannot see (address, alignment),
 * OutOfMemoryError for the workspace; the output and the cache are then left as they were. */
#define _POSIX_C_SOURCE 200112L /* posix_memalign */

#include <jni.h>
#include <pthreadpool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "relattn/relattn.h"
#ifdef RELATTN_JNI_CHECK_SIGNATURES
#include "org_relattn_KVCache.h" /* javac -h: the definitions below must match them */
#include "org_relattn_RelAttn.h"
#endif

static void Throw(JNIEnv* env, const char* class_name, const char* message) {
  jclass c = (*env)->FindClass(env, class_name);
  if (c) (*env)->ThrowNew(env, c, message);
}

static void ThrowStatus(JNIEnv* env, relattn_status status) {
  char message[512];
  snprintf(message, sizeof message, "%s: %s", relattn_status_string(status), relattn_last_error());
  jclass c = (*env)->FindClass(env, "org/relattn/RelAttnException");
  jmethodID init = c ? (*env)->GetMethodID(env, c, "<init>", "(ILjava/lang/String;)V") : NULL;
  jstring text = init ? (*env)->NewStringUTF(env, message) : NULL;
  jobject e = text ? (*env)->NewObject(env, c, init, (jint)status, text) : NULL;
  if (e) (*env)->Throw(env, (jthrowable)e);
}

/* Fields of RelAttn.Params by name. A missing field leaves NoSuchFieldError pending; once an
 * exception is pending every read returns 0 / NULL, and the caller checks ExceptionCheck. */
static jfieldID Field(JNIEnv* env, jobject p, const char* name, const char* type) {
  if ((*env)->ExceptionCheck(env)) return NULL;
  jclass c = (*env)->GetObjectClass(env, p);
  jfieldID f = c ? (*env)->GetFieldID(env, c, name, type) : NULL;
  (*env)->DeleteLocalRef(env, c); /* a call reads ~40 fields: JNI guarantees 16 local refs */
  return f;
}
static jint IntField(JNIEnv* env, jobject p, const char* name) {
  jfieldID f = Field(env, p, name, "I");
  return f ? (*env)->GetIntField(env, p, f) : 0;
}
static jlong LongField(JNIEnv* env, jobject p, const char* name) {
  jfieldID f = Field(env, p, name, "J");
  return f ? (*env)->GetLongField(env, p, f) : 0;
}
static jfloat FloatField(JNIEnv* env, jobject p, const char* name) {
  jfieldID f = Field(env, p, name, "F");
  return f ? (*env)->GetFloatField(env, p, f) : 0.0f;
}
static jboolean BoolField(JNIEnv* env, jobject p, const char* name) {
  jfieldID f = Field(env, p, name, "Z");
  return f ? (*env)->GetBooleanField(env, p, f) : JNI_FALSE;
}
static jfloatArray ArrayField(JNIEnv* env, jobject p, const char* name) {
  jfieldID f = Field(env, p, name, "[F");
  return f ? (jfloatArray)(*env)->GetObjectField(env, p, f) : NULL;
}

static jobject ObjectField(JNIEnv* env, jobject p, const char* name, const char* type) {
  jfieldID f = Field(env, p, name, type);
  return f ? (*env)->GetObjectField(env, p, f) : NULL;
}

/* The primitive arrays one call holds: float[] 'F', byte[] 'B', double[] 'D', long[] 'J'.
 * Released without copying back, but for the outputs (pinned last, from index outputs_from
 * on), and those only when no exception is pending (a failed call leaves them untouched). */
typedef struct Pinned {
  jarray array;
  void* data;
  char type;
} Pinned;
enum { kMaxPinned = 16 }; /* the most a call pins: 3 tables, 3 rope tables, 6 + 1 tensors */
typedef struct Pins {
  Pinned at[kMaxPinned];
  int n;
} Pins;

/* The elements of array (NULL: none, or an exception pending, which it leaves so). */
static void* Pin(JNIEnv* env, Pins* pins, jarray array, char type) {
  if (!array || (*env)->ExceptionCheck(env)) return NULL;
  if (pins->n == kMaxPinned) {
    Throw(env, "java/lang/IllegalStateException", "relattn_jni: more arrays than kMaxPinned");
    return NULL;
  }
  void* data = NULL;
  switch (type) {
    case 'F': data = (*env)->GetFloatArrayElements(env, (jfloatArray)array, NULL); break;
    case 'B': data = (*env)->GetByteArrayElements(env, (jbyteArray)array, NULL); break;
    case 'D': data = (*env)->GetDoubleArrayElements(env, (jdoubleArray)array, NULL); break;
    case 'J': data = (*env)->GetLongArrayElements(env, (jlongArray)array, NULL); break;
  }
  if (data) {
    Pinned pin = {array, data, type};
    pins->at[pins->n++] = pin;
  }
  return data;
}

static void Unpin(JNIEnv* env, Pins* pins, int outputs_from) {
  const int ok = !(*env)->ExceptionCheck(env);
  for (int i = 0; i < pins->n; ++i) {
    Pinned* p = &pins->at[i];
    const jint mode = ok && i >= outputs_from ? 0 : JNI_ABORT;
    switch (p->type) {
      case 'F': (*env)->ReleaseFloatArrayElements(env, p->array, p->data, mode); break;
      case 'B': (*env)->ReleaseByteArrayElements(env, p->array, p->data, mode); break;
      case 'D': (*env)->ReleaseDoubleArrayElements(env, p->array, p->data, mode); break;
      case 'J': (*env)->ReleaseLongArrayElements(env, p->array, p->data, mode); break;
    }
  }
  pins->n = 0;
}

/* RelAttn.Rope (null: off) into relattn_rope, field for field (zeros are the C defaults);
 * its tables are pinned in pins. */
static void ReadRope(JNIEnv* env, jobject r, relattn_rope* rope, Pins* pins) {
  relattn_rope zero = {0};
  *rope = zero;
  if (!r) return;
  rope->pairing = (relattn_rope_pairing)IntField(env, r, "pairing");
  rope->rotary_dims = IntField(env, r, "rotaryDims");
  rope->base = FloatField(env, r, "base");
  rope->linear_scale = FloatField(env, r, "linearScale");
  relattn_rope_scaling* s = &rope->scaling;
  s->type = (relattn_rope_scaling_type)IntField(env, r, "scaling");
  s->factor = FloatField(env, r, "factor");
  s->low_freq_factor = FloatField(env, r, "lowFreqFactor");
  s->high_freq_factor = FloatField(env, r, "highFreqFactor");
  s->beta_fast = FloatField(env, r, "betaFast");
  s->beta_slow = FloatField(env, r, "betaSlow");
  s->no_truncate = BoolField(env, r, "noTruncate");
  s->attention_factor = FloatField(env, r, "attentionFactor");
  s->original_max_position = LongField(env, r, "originalMaxPosition");
  s->max_position = LongField(env, r, "maxPosition");
  s->sequence_length = LongField(env, r, "sequenceLength");
  s->short_factor = Pin(env, pins, ObjectField(env, r, "shortFactor", "[D"), 'D');
  s->long_factor = Pin(env, pins, ObjectField(env, r, "longFactor", "[D"), 'D');
  s->inv_freq = Pin(env, pins, ObjectField(env, r, "invFreq", "[D"), 'D');
}

/* Everything in Params but the tensors, with rope read from the Rope object given (Params'
 * own, or a KVCache's); slopes, table, sinks and rope tables are pinned in pins. Returns 0
 * with an exception pending on failure. */
static int ReadParams(JNIEnv* env, jobject p, jobject rope, relattn_attention_desc* d, Pins* pins,
                      int32_t* n_threads) {
  relattn_attention_desc_init(d);
  d->n_q = IntField(env, p, "nQ");
  d->n_kv = IntField(env, p, "nKv");
  d->n_heads = IntField(env, p, "heads");
  d->n_kv_heads = IntField(env, p, "kvHeads");
  d->head_dim = IntField(env, p, "headDim");
  d->v_head_dim = IntField(env, p, "vHeadDim");
  d->scale = FloatField(env, p, "scale");
  d->mask.causal = BoolField(env, p, "causal");
  d->mask.window = LongField(env, p, "window");
  d->mask.n_valid_kv = LongField(env, p, "validKv");
  d->q_pos.start = LongField(env, p, "qStart");
  d->k_pos.start = LongField(env, p, "kStart");
  const int bidirectional = !d->mask.causal || BoolField(env, p, "bidirectional");
  relattn_bias* b = &d->bias;
  b->kind = (relattn_bias_kind)IntField(env, p, "scheme");
  b->alibi.max_bias = FloatField(env, p, "maxBias");
  b->alibi.causal = !bidirectional;
  b->alibi.slopes = Pin(env, pins, ArrayField(env, p, "slopes"), 'F');
  /* One table field: T5 [heads][buckets], Shaw [heads][2k+1], Shaw vector
   * [heads or 1][2k+1][head_dim]; the kind picks which the library reads. */
  const float* table = Pin(env, pins, ArrayField(env, p, "table"), 'F');
  b->t5.table = b->shaw.table = b->shaw_vector.table = table;
  b->t5.table_dtype = RELATTN_F32;
  b->t5.num_buckets = IntField(env, p, "numBuckets");
  b->t5.max_distance = IntField(env, p, "maxDistance");
  b->t5.bidirectional = bidirectional;
  b->shaw.k = b->shaw_vector.k = IntField(env, p, "shawK");
  b->shaw_vector.per_head = BoolField(env, p, "shawPerHead");
  d->softcap = FloatField(env, p, "softcap");
  d->sinks = Pin(env, pins, ArrayField(env, p, "sinks"), 'F');
  ReadRope(env, rope, &d->rope, pins);
  *n_threads = IntField(env, p, "threads");
  if ((*env)->ExceptionCheck(env)) return 0;
  if (*n_threads < 1) {
    Throw(env, "java/lang/IllegalArgumentException", "threads: must be >= 1");
    return 0;
  }
  return 1;
}

/* Runs d on the calling thread or on a pthreadpool of n_threads; throws on failure. */
static void Run(JNIEnv* env, const relattn_attention_desc* d, int32_t n_threads) {
  pthreadpool_t pool = n_threads > 1 ? pthreadpool_create((size_t)n_threads) : NULL;
  relattn_threads threads;
  relattn_status s = pool ? relattn_threads_from_pthreadpool(pool, &threads) : RELATTN_OK;
  size_t bytes = 0;
  if (s == RELATTN_OK)
    s = relattn_attention_workspace_size(d, pool ? threads.n_threads : 1, &bytes);
  void* workspace = NULL;
  if (s == RELATTN_OK && posix_memalign(&workspace, RELATTN_WORKSPACE_ALIGNMENT, bytes + 1) != 0) {
    if (pool) pthreadpool_destroy(pool);
    Throw(env, "java/lang/OutOfMemoryError", "relattn workspace");
    return;
  }
  if (s == RELATTN_OK) s = relattn_attention(d, workspace, bytes, pool ? &threads : NULL);
  free(workspace);
  if (pool) pthreadpool_destroy(pool);
  if (s != RELATTN_OK) ThrowStatus(env, s);
}

/* A contiguous [tokens][heads][dim] tensor. */
static relattn_tensor Tensor(const void* data, relattn_dtype dtype, int32_t heads, int32_t dim) {
  relattn_tensor t = {data, dtype, (int64_t)heads * dim, dim, NULL, 0, 0};
  return t;
}

/* A [tokens][heads][dim] array tensor: values a float[] (scales NULL: F32) or a byte[] with
 * its row scales float[] [tokens][heads] (I8). Returns 0 with an exception pending if a pin
 * failed. */
static int ArrayTensor(JNIEnv* env, Pins* pins, jobject values, jfloatArray scales, int32_t heads,
                       int32_t dim, relattn_tensor* t) {
  const void* data = Pin(env, pins, (jarray)values, scales ? 'B' : 'F');
  *t = Tensor(data, scales ? RELATTN_I8 : RELATTN_F32, heads, dim);
  if (scales) {
    t->row_scales = Pin(env, pins, scales, 'F');
    t->scale_token_stride = heads;
    t->scale_head_stride = 1;
  }
  return data && (!scales || t->row_scales);
}

/* The F32 [n_q][n_heads][v_dim] output in a float[]. */
static relattn_output ArrayOutput(const void* data, int32_t heads, int32_t v_dim) {
  relattn_output o = {(void*)data, RELATTN_F32, (int64_t)heads * v_dim, v_dim};
  return o;
}

JNIEXPORT void JNICALL Java_org_relattn_RelAttn_nativeAttentionArrays(
    JNIEnv* env, jclass cls, jobject p, jobject rope, jobject q, jfloatArray q_scales, jobject k,
    jfloatArray k_scales, jobject v, jfloatArray v_scales, jfloatArray out) {
  (void)cls;
  relattn_attention_desc d;
  Pins pins = {.n = 0};
  int32_t n_threads = 1;
  int outputs_from = kMaxPinned;
  if (ReadParams(env, p, rope, &d, &pins, &n_threads)) {
    const int32_t v_dim = d.v_head_dim ? d.v_head_dim : d.head_dim;
    const float* o = NULL;
    if (ArrayTensor(env, &pins, q, q_scales, d.n_heads, d.head_dim, &d.q) &&
        ArrayTensor(env, &pins, k, k_scales, d.n_kv_heads, d.head_dim, &d.k) &&
        ArrayTensor(env, &pins, v, v_scales, d.n_kv_heads, v_dim, &d.v) &&
        (outputs_from = pins.n, o = Pin(env, &pins, out, 'F'))) {
      d.o = ArrayOutput(o, d.n_heads, v_dim);
      Run(env, &d, n_threads);
    }
  }
  Unpin(env, &pins, outputs_from);
}

/* relattn_quantize_i8 of the F32 x [tokens][heads][dim] into values and scales (lengths
 * checked by the Java side); nothing is written on failure. */
JNIEXPORT void JNICALL Java_org_relattn_RelAttn_nativeQuantizeI8(JNIEnv* env, jclass cls,
                                                                 jfloatArray x, jint tokens,
                                                                 jint heads, jint dim,
                                                                 jbyteArray values,
                                                                 jfloatArray scales) {
  (void)cls;
  Pins pins = {.n = 0};
  const float* src = Pin(env, &pins, x, 'F');
  int8_t* q = src ? Pin(env, &pins, values, 'B') : NULL;
  float* s = q ? Pin(env, &pins, scales, 'F') : NULL;
  if (s) {
    const relattn_tensor t = Tensor(src, RELATTN_F32, heads, dim);
    relattn_tensor quantized;
    const relattn_status status = relattn_quantize_i8(&t, tokens, heads, dim, q, s, &quantized);
    if (status != RELATTN_OK) ThrowStatus(env, status);
  }
  Unpin(env, &pins, 1); /* values and scales are the outputs */
}

/* The address of a direct buffer's byte offset, aligned to its element size; NULL with an
 * exception pending if it has none. */
static void* BufferAt(JNIEnv* env, jobject buffer, jlong offset, relattn_dtype dtype,
                      const char* name) {
  char* base = buffer ? (char*)(*env)->GetDirectBufferAddress(env, buffer) : NULL;
  char message[128];
  if (!base) {
    snprintf(message, sizeof message, "%s: not a direct buffer", name);
  } else if ((uintptr_t)(base + offset) % (dtype == RELATTN_F16 ? 2 : 4) != 0) {
    snprintf(message, sizeof message, "%s: address not aligned to its element size", name);
  } else {
    return base + offset;
  }
  Throw(env, "java/lang/IllegalArgumentException", message);
  return NULL;
}

JNIEXPORT void JNICALL Java_org_relattn_RelAttn_nativeAttentionBuffers(
    JNIEnv* env, jclass cls, jobject p, jobject rope, jobject q, jlong q_offset, jobject k,
    jlong k_offset, jobject v, jlong v_offset, jobject out, jlong out_offset) {
  (void)cls;
  relattn_attention_desc d;
  Pins pins = {.n = 0};
  int32_t n_threads = 1;
  if (ReadParams(env, p, rope, &d, &pins, &n_threads)) {
    const relattn_dtype dtype = (relattn_dtype)IntField(env, p, "dtype");
    const relattn_dtype out_dtype = (relattn_dtype)IntField(env, p, "outDtype");
    const int32_t v_dim = d.v_head_dim ? d.v_head_dim : d.head_dim;
    void* qa = BufferAt(env, q, q_offset, dtype, "q");
    void* ka = qa ? BufferAt(env, k, k_offset, dtype, "k") : NULL;
    void* va = ka ? BufferAt(env, v, v_offset, dtype, "v") : NULL;
    void* oa = va ? BufferAt(env, out, out_offset, out_dtype, "out") : NULL;
    if (oa) {
      d.q = Tensor(qa, dtype, d.n_heads, d.head_dim);
      d.k = Tensor(ka, dtype, d.n_kv_heads, d.head_dim);
      d.v = Tensor(va, dtype, d.n_kv_heads, v_dim);
      relattn_output o = {oa, out_dtype, (int64_t)d.n_heads * v_dim, v_dim};
      d.o = o;
      Run(env, &d, n_threads);
    }
  }
  Unpin(env, &pins, kMaxPinned);
}

JNIEXPORT jfloatArray JNICALL Java_org_relattn_RelAttn_alibiSlopes(JNIEnv* env, jclass cls,
                                                                   jint heads, jfloat max_bias) {
  (void)cls;
  float slopes[RELATTN_MAX_HEADS];
  const relattn_status s = relattn_alibi_slopes(heads, max_bias, slopes);
  if (s != RELATTN_OK) {
    ThrowStatus(env, s);
    return NULL;
  }
  jfloatArray result = (*env)->NewFloatArray(env, heads);
  if (result) (*env)->SetFloatArrayRegion(env, result, 0, heads, slopes);
  return result;
}

JNIEXPORT jint JNICALL Java_org_relattn_RelAttn_t5Bucket(JNIEnv* env, jclass cls, jlong offset,
                                                         jint num_buckets, jint max_distance,
                                                         jboolean bidirectional) {
  (void)cls;
  int32_t bucket = 0;
  const relattn_status s =
      relattn_t5_bucket(offset, num_buckets, max_distance, bidirectional, &bucket);
  if (s != RELATTN_OK) ThrowStatus(env, s);
  return bucket;
}

JNIEXPORT jstring JNICALL Java_org_relattn_RelAttn_version(JNIEnv* env, jclass cls) {
  (void)cls;
  return (*env)->NewStringUTF(env, relattn_version_string());
}

/* ---------------------------------------------------------------- KV cache (KVCache.java) */

/* A KVCache's fields (kvHeads ... sinkPositions, rope) as a relattn_kv_cache_desc; the rope's
 * tables are pinned in pins. Returns 0 with an exception pending on failure. */
static int ReadCacheDesc(JNIEnv* env, jobject c, relattn_kv_cache_desc* d, Pins* pins) {
  relattn_kv_cache_desc zero = {0};
  *d = zero;
  d->n_kv_heads = IntField(env, c, "kvHeads");
  d->head_dim = IntField(env, c, "headDim");
  d->v_head_dim = IntField(env, c, "vHeadDim");
  d->capacity = LongField(env, c, "capacity");
  d->k_dtype = (relattn_dtype)IntField(env, c, "kDtype");
  d->v_dtype = (relattn_dtype)IntField(env, c, "vDtype");
  d->ring = BoolField(env, c, "ring");
  ReadRope(env, ObjectField(env, c, "rope", "Lorg/relattn/RelAttn$Rope;"), &d->rope, pins);
  d->n_sink_tokens = LongField(env, c, "sinkTokens");
  d->sink_positions = (relattn_sink_positions)IntField(env, c, "sinkPositions");
  return !(*env)->ExceptionCheck(env);
}

JNIEXPORT jlong JNICALL Java_org_relattn_KVCache_nativeSize(JNIEnv* env, jclass cls, jobject c) {
  (void)cls;
  relattn_kv_cache_desc d;
  Pins pins = {.n = 0};
  size_t bytes = 0;
  if (ReadCacheDesc(env, c, &d, &pins)) {
    const relattn_status s = relattn_kv_cache_size(&d, &bytes);
    if (s != RELATTN_OK) ThrowStatus(env, s);
  }
  Unpin(env, &pins, kMaxPinned);
  return (jlong)bytes;
}

/* Bytes from the direct buffer b's address up to the next RELATTN_KV_CACHE_ALIGNMENT. */
JNIEXPORT jint JNICALL Java_org_relattn_KVCache_nativeAlignOffset(JNIEnv* env, jclass cls,
                                                                  jobject b) {
  (void)cls;
  const uintptr_t address = (uintptr_t)(*env)->GetDirectBufferAddress(env, b);
  return (jint)((RELATTN_KV_CACHE_ALIGNMENT - address % RELATTN_KV_CACHE_ALIGNMENT) %
                RELATTN_KV_CACHE_ALIGNMENT);
}

/* The cache at the start of KVCache's memory buffer (relattn_kv_cache_init puts it there);
 * the library checks its header at every call. */
static relattn_kv_cache* CacheOf(JNIEnv* env, jobject memory) {
  return (relattn_kv_cache*)(*env)->GetDirectBufferAddress(env, memory);
}

JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeInit(JNIEnv* env, jclass cls, jobject c,
                                                           jobject memory) {
  (void)cls;
  relattn_kv_cache_desc d;
  Pins pins = {.n = 0};
  if (ReadCacheDesc(env, c, &d, &pins)) {
    relattn_kv_cache* cache = NULL;
    const relattn_status s = relattn_kv_cache_init(
        &d, CacheOf(env, memory), (size_t)(*env)->GetDirectBufferCapacity(env, memory), &cache);
    if (s != RELATTN_OK) ThrowStatus(env, s);
  }
  Unpin(env, &pins, kMaxPinned);
}

/* Appends n tokens: k [n][kv_heads][head_dim], v [n][kv_heads][v_head_dim] F32 (lengths
 * checked by the Java side) at positions [n] (NULL: continuing). Changes nothing on failure. */
JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeAppend(JNIEnv* env, jclass cls,
                                                             jobject memory, jlong n, jint kv_heads,
                                                             jint head_dim, jint v_head_dim,
                                                             jfloatArray k, jfloatArray v,
                                                             jlongArray positions) {
  (void)cls;
  Pins pins = {.n = 0};
  const float* ka = Pin(env, &pins, k, 'F');
  const float* va = ka ? Pin(env, &pins, v, 'F') : NULL;
  const jlong* pa = va ? Pin(env, &pins, positions, 'J') : NULL;
  if (va && !(*env)->ExceptionCheck(env)) {
    const relattn_tensor kt = Tensor(ka, RELATTN_F32, kv_heads, head_dim);
    const relattn_tensor vt = Tensor(va, RELATTN_F32, kv_heads, v_head_dim);
    const relattn_positions pos = {(const int64_t*)pa, 0};
    const relattn_status s =
        relattn_kv_cache_append(CacheOf(env, memory), n, &kt, &vt, pa ? &pos : NULL);
    if (s != RELATTN_OK) ThrowStatus(env, s);
  }
  Unpin(env, &pins, kMaxPinned);
}

/* Appends n tokens from direct buffers of dtype (F32 or F16) at the byte offsets the Java side
 * checked: k [n][kv_heads][head_dim], v [n][kv_heads][v_head_dim], positions continuing. */
JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeAppendBuffers(
    JNIEnv* env, jclass cls, jobject memory, jlong n, jint kv_heads, jint head_dim, jint v_head_dim,
    jint dtype, jobject k, jlong k_offset, jobject v, jlong v_offset) {
  (void)cls;
  void* ka = BufferAt(env, k, k_offset, (relattn_dtype)dtype, "k");
  void* va = ka ? BufferAt(env, v, v_offset, (relattn_dtype)dtype, "v") : NULL;
  if (va) {
    const relattn_tensor kt = Tensor(ka, (relattn_dtype)dtype, kv_heads, head_dim);
    const relattn_tensor vt = Tensor(va, (relattn_dtype)dtype, kv_heads, v_head_dim);
    const relattn_status s = relattn_kv_cache_append(CacheOf(env, memory), n, &kt, &vt, NULL);
    if (s != RELATTN_OK) ThrowStatus(env, s);
  }
}

JNIEXPORT jlong JNICALL Java_org_relattn_KVCache_nativeLength(JNIEnv* env, jclass cls,
                                                              jobject memory) {
  (void)cls;
  return relattn_kv_cache_length(CacheOf(env, memory));
}

JNIEXPORT jlong JNICALL Java_org_relattn_KVCache_nativeNextPosition(JNIEnv* env, jclass cls,
                                                                    jobject memory) {
  (void)cls;
  return relattn_kv_cache_next_position(CacheOf(env, memory));
}

JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeTruncate(JNIEnv* env, jclass cls,
                                                               jobject memory, jlong n) {
  (void)cls;
  const relattn_status s = relattn_kv_cache_truncate(CacheOf(env, memory), n);
  if (s != RELATTN_OK) ThrowStatus(env, s);
}

JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeClear(JNIEnv* env, jclass cls,
                                                            jobject memory) {
  (void)cls;
  relattn_kv_cache_clear(CacheOf(env, memory));
}

/* Attention of q [n_q][heads][head_dim] (float[] with q_scales NULL, or byte[] with its row
 * scales: I8) over the cache, queries from q_start, into out [n_q][heads][v_head_dim]; the
 * Params' key fields are 0 or the cache's (checked by the Java side and the library). */
JNIEXPORT void JNICALL Java_org_relattn_KVCache_nativeAttention(
    JNIEnv* env, jclass cls, jobject p, jobject rope, jobject memory, jlong q_start, jint head_dim,
    jint v_head_dim, jobject q, jfloatArray q_scales, jfloatArray out) {
  (void)cls;
  relattn_attention_desc d;
  Pins pins = {.n = 0};
  int32_t n_threads = 1;
  int outputs_from = kMaxPinned;
  if (ReadParams(env, p, rope, &d, &pins, &n_threads)) {
    const float* o = NULL;
    if (ArrayTensor(env, &pins, q, q_scales, d.n_heads, head_dim, &d.q) &&
        (outputs_from = pins.n, o = Pin(env, &pins, out, 'F'))) {
      d.kv_cache = CacheOf(env, memory);
      d.head_dim = head_dim;
      d.v_head_dim = v_head_dim;
      d.q_pos.start = q_start;
      d.o = ArrayOutput(o, d.n_heads, v_head_dim);
      Run(env, &d, n_threads);
    }
  }
  Unpin(env, &pins, outputs_from);
}
